-- soak_pcall.lua: calls the Go-backed magnet.fs.stat with a bad argument
-- QUERY_STRING times (default 1000), catching each error with pcall (every
-- tenth with xpcall and debug.traceback), then checks that a table error
-- value survives pcall. Answers "<errors caught> <function used>".
local n = tonumber(os.getenv("QUERY_STRING")) or 1000
local fs = magnet.fs
if type(fs) ~= "table" or type(fs.stat) ~= "function" then
	error("soak_pcall: magnet.fs.stat (Go-backed) is missing")
end
local bad = {}
local caught = 0
for i = 1, n do
	local ok, err
	if i % 10 == 0 then
		ok, err = xpcall(function() return fs.stat(bad) end, debug.traceback)
	else
		ok, err = pcall(fs.stat, bad)
	end
	if not ok and type(err) == "string" and err ~= "" then
		caught = caught + 1
	end
end
local ok, e = pcall(error, {code = 1})
if ok or type(e) ~= "table" or e.code ~= 1 then
	error("soak_pcall: pcall(error, {code = 1}) did not return the table")
end
print("Content-Type: text/plain\r\n\r\n" .. caught .. " magnet.fs.stat")
