-- A guestbook on SQLite: a form, entries stored with placeholders (never
-- SQL built from input), escaped on output, and a redirect after POST so
-- that reloading the page does not post twice. The database file comes
-- from GUESTBOOK_DB (a FastCGI param or the environment), by default a
-- file in /tmp for a first try.
local r = magnet.request
if not _G.guestbook then
	local db = os.getenv("GUESTBOOK_DB") or "/tmp/magnet-guestbook.db"
	local con = assert(luasql.sqlite3():connect(db))
	assert(con:execute([[CREATE TABLE IF NOT EXISTS entries (
		id INTEGER PRIMARY KEY, name TEXT NOT NULL, message TEXT NOT NULL,
		created INTEGER NOT NULL)]]))
	_G.guestbook = {
		con = con,
		insert = assert(con:prepare("INSERT INTO entries (name, message, created) VALUES (?, ?, ?)")),
		latest = assert(con:prepare("SELECT name, message, created FROM entries ORDER BY id DESC LIMIT ?")),
	}
end
local gb = _G.guestbook

if r.method == "POST" then
	local name, message = r.post.name or "", r.post.message or ""
	if name == "" or message == "" or #name > 100 or #message > 2000 then
		magnet.exit(400, "A name (up to 100 bytes) and a message (up to 2000) are needed.\n")
	end
	assert(gb.insert:execute(name, message, os.time()))
	magnet.redirect(r.path or "/", 303)
end

magnet.header["Content-Type"] = "text/html; charset=utf-8"
local h = magnet.escape_html
local out = { "<!doctype html><title>Guestbook</title><h1>Guestbook</h1>\n" }
local cur = assert(gb.latest:execute(20))
local row = cur:fetch({}, "a")
while row do
	out[#out + 1] = string.format("<p><b>%s</b> (%s): %s</p>\n", h(row.name),
		os.date("!%Y-%m-%d %H:%M", row.created), h(row.message))
	row = cur:fetch(row, "a")
end
out[#out + 1] = [[<form method="post"><input name="name" placeholder="name">
<textarea name="message"></textarea><button>Sign</button></form>
]]
print(table.concat(out))
