-- echo.lua: answers the request body, read CGI style with io.read.
local body = io.read("*a") or ""
io.write("Content-Type: application/octet-stream\r\n\r\n" .. body)
