-- slow.lua: creates the file named by the MARKER param (so a test knows
-- the request is running), then spins about 300 ms of CPU.
local marker = os.getenv("MARKER")
if marker then
	local f = assert(io.open(marker, "w"))
	f:close()
end
local t0 = os.clock()
while os.clock() - t0 < 0.3 do end
print("Content-Type: text/plain\r\n\r\nslow done")
