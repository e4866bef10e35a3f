-- hits.lua: answers "<pid> <hits of 123.lua in this worker's cache>".
-- QUERY_STRING, when a number, makes it spin that many milliseconds of CPU
-- first, so that concurrent requests land on different workers.
local ms = tonumber(os.getenv("QUERY_STRING")) or 0
local t0 = os.clock()
while (os.clock() - t0) * 1000 < ms do end
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("*l"):match("^(%d+)")
f:close()
local hits = 0
for name, entry in pairs(magnet.cache) do
	if name:sub(-8) == "/123.lua" then hits = entry.hits end
end
print("Content-Type: text/plain\r\n\r\n" .. pid .. " " .. hits)
