-- A small JSON API on magnet.json: GET lists the notes kept in this
-- worker's _G, POST {"text": "..."} adds one. Bad JSON is a 400.
-- (A plain global assignment would go to this request's environment and
-- be gone at its end: what outlives the request goes in _G.)
_G.notes = _G.notes or {}
local notes = _G.notes

magnet.header["Content-Type"] = "application/json"
local r = magnet.request
if r.method == "POST" then
	local ok, v = pcall(magnet.json.decode, r.body())
	if not ok or type(v) ~= "table" or type(v.text) ~= "string" then
		magnet.exit(400, magnet.json.encode({error = "expected {\"text\": \"...\"}"}))
	end
	notes[#notes + 1] = {id = #notes + 1, text = v.text}
	magnet.status = 201
	print(magnet.json.encode(notes[#notes]))
	return
end
-- an empty Lua table encodes as {}: send a JSON array as such only when
-- there is something in it
if #notes == 0 then print("[]") else print(magnet.json.encode(notes)) end
