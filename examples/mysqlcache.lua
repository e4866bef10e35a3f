-- mysqlcache.lua: lua-magnet's MySQL example. The connection lives in _G,
-- so each worker opens it once; the rendered page is kept in _G for a
-- second, so a busy page costs one query per second per worker. The
-- connection comes from the request's environment (os.getenv), with
-- defaults for a local server.
if not _G.con then
	_G.env = luasql.mysql()
	_G.con = assert(env:connect(os.getenv("MYSQL_DATABASE") or "test",
		os.getenv("MYSQL_USER") or "root", os.getenv("MYSQL_PASSWORD") or "",
		os.getenv("MYSQL_HOST") or "localhost"))
end

local now = os.time()
local cache = _G.page_cache
if not cache or cache.time ~= now then
	local cur, err = con:execute("SELECT id, name FROM users ORDER BY id")
	if not cur then
		error(err)
	end
	local o = { "<table>\n" }
	local row = cur:fetch({}, "a")
	while row do
		o[#o + 1] = string.format("<tr><td>%s</td><td>%s</td></tr>\n", row.id, row.name)
		row = cur:fetch(row, "a")
	end
	o[#o + 1] = "</table>\n"
	cache = { time = now, html = table.concat(o) }
	_G.page_cache = cache
end

print("Content-Type: text/html\r\n\r\n" .. cache.html)
