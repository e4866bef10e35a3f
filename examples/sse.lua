-- Server-Sent Events: the lines appended to a file, as events, like
-- tail -f. Each event is flushed as it is found; between looks at the file
-- the script sleeps. magnet.sleep blocks this worker and every connection
-- it holds, and the stream counts against --timeout (30 s), so it ends
-- after 20 s, or at a line "end". The file comes from SSE_FILE (a FastCGI
-- param or the environment). Behind nginx give the location
-- "fastcgi_buffering off;", so that each flush is passed on as it comes.
--   echo hello >> /tmp/magnet-sse.txt   -- in another shell
local path = os.getenv("SSE_FILE") or "/tmp/magnet-sse.txt"
magnet.header["Content-Type"] = "text/event-stream"
magnet.header["Cache-Control"] = "no-cache"
print(": lines of ", path, "\n\n") -- a comment line opens the stream
magnet.flush()

local off, id = 0, 0
local stop = os.time() + 20
while os.time() < stop do
	local f = io.open(path, "rb")
	if f then
		f:seek("set", off)
		local data = f:read("*a") or ""
		f:close()
		-- whole lines only: a line still being written waits for the next look
		for line in data:gmatch("([^\n]*)\n") do
			off = off + #line + 1
			line = line:gsub("\r$", "")
			if line == "end" then
				print("event: end\ndata: bye\n\n")
				return
			end
			id = id + 1
			print("id: ", id, "\ndata: ", line, "\n\n")
		end
		magnet.flush()
	end
	magnet.sleep(0.1)
end
print("event: end\ndata: time is up\n\n")
