-- The database page, magnet's way: the global luasql (no require), a
-- connection and a prepared statement kept in _G, the group bound to a
-- placeholder, names escaped with magnet.escape_html.
if not _G.items then
	_G.db = assert(luasql.mysql():connect("bench", "bench", "bench", "localhost"))
	_G.items = assert(db:prepare("SELECT id, name, price FROM items WHERE grp = ? ORDER BY id"))
end

local g = tonumber(magnet.request.get.g) or 1
local cur = assert(items:execute(g))
local esc = magnet.escape_html
local o = { "<!DOCTYPE html>\n<html><head><title>Group ", g, "</title></head><body>\n<h1>Group ", g,
	"</h1>\n<table>\n<tr><th>id</th><th>name</th><th>price</th></tr>\n" }
local row = cur:fetch({}, "a")
while row do
	o[#o + 1] = "<tr><td>" .. row.id .. "</td><td>" .. esc(row.name) .. "</td><td>" .. row.price .. "</td></tr>\n"
	row = cur:fetch(row, "a")
end
o[#o + 1] = "</table>\n</body></html>\n"
magnet.header["Content-Type"] = "text/html; charset=utf-8"
print(table.concat(o))
