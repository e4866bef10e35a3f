-- The database page for the C reference: Debian's LuaSQL (lua-sql-mysql)
-- through require, the connection kept in _G (each request runs in a
-- fresh environment, so globals are set on _G by name). LuaSQL has no
-- placeholders: the group is checked as a number and escaped by hand.
if not _G.db then
	local luasql = require "luasql.mysql"
	_G.dbenv = luasql.mysql()
	_G.db = assert(dbenv:connect("bench", "bench", "bench", "localhost"))
end

local esc_map = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;" }
local function esc(s)
	return (string.gsub(s, "[&<>\"']", esc_map))
end

local g = tonumber(string.match(os.getenv("QUERY_STRING") or "", "g=(%d+)")) or 1
local cur = assert(db:execute("SELECT id, name, price FROM items WHERE grp = '" ..
	db:escape(tostring(g)) .. "' ORDER BY id"))
local o = { "<!DOCTYPE html>\n<html><head><title>Group ", g, "</title></head><body>\n<h1>Group ", g,
	"</h1>\n<table>\n<tr><th>id</th><th>name</th><th>price</th></tr>\n" }
local row = cur:fetch({}, "a")
while row do
	o[#o + 1] = "<tr><td>" .. row.id .. "</td><td>" .. esc(row.name) .. "</td><td>" .. row.price .. "</td></tr>\n"
	row = cur:fetch(row, "a")
end
cur:close()
o[#o + 1] = "</table>\n</body></html>\n"
print("Content-Type: text/html; charset=utf-8\r\n\r\n", table.concat(o))
