-- pid.lua: answers the process id of the worker that ran it. QUERY_STRING,
-- when a number, makes it spin that many milliseconds of CPU first, so
-- that concurrent requests spread over the workers.
local ms = tonumber(os.getenv("QUERY_STRING")) or 0
local t0 = os.clock()
while (os.clock() - t0) * 1000 < ms do end
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("*l"):match("^(%d+)")
f:close()
print("Content-Type: text/plain\r\n\r\n" .. pid)
