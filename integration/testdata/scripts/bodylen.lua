-- bodylen.lua: answers the length of the request body, read through the
-- structured API.
local body = magnet.request.body() or ""
magnet.header["Content-Type"] = "text/plain"
print(#body)
