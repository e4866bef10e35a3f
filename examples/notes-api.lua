-- A JSON API on PostgreSQL: GET lists the notes, POST {"text": "..."}
-- adds one and answers 201 with its id. The connection is kept in _G and
-- reconnects by itself after a database restart; the connection string
-- comes from NOTES_DSN (a FastCGI param or the environment).
local r = magnet.request
local json = magnet.json
if not _G.notes then
	local con, err = luasql.postgres():connect(os.getenv("NOTES_DSN") or "dbname=notes")
	if not con then magnet.exit(503, json.encode({ error = err })) end
	assert(con:execute([[CREATE TABLE IF NOT EXISTS notes (
		id SERIAL PRIMARY KEY, text TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT now())]]))
	_G.notes = con
end
local con = _G.notes
magnet.header["Content-Type"] = "application/json"

if r.method == "POST" then
	local ok, note = pcall(json.decode, r.body())
	if not ok or type(note) ~= "table" or type(note.text) ~= "string" or note.text == "" then
		magnet.exit(400, json.encode({ error = "a JSON object with a non-empty text is expected" }))
	end
	local cur, err = con:execute("INSERT INTO notes (text) VALUES ($1) RETURNING id", note.text)
	if not cur then magnet.exit(503, json.encode({ error = err })) end
	magnet.status = 201
	print(json.encode({ id = cur:fetch() }))
	return
end

local cur, err = con:execute("SELECT id, text FROM notes ORDER BY id DESC LIMIT $1", 50)
if not cur then magnet.exit(503, json.encode({ error = err })) end
local list = {}
local row = cur:fetch({}, "a")
while row do
	list[#list + 1] = { id = row.id, text = row.text }
	row = cur:fetch({}, "a")
end
print(json.encode({ notes = list }))
