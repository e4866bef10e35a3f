-- error.lua: fails at run time.
local t = nil
print("Content-Type: text/plain\r\n\r\nnot reached")
error("integration: deliberate failure " .. t.field)
