-- soak_error.lua: raises an uncaught error, a table when QUERY_STRING is
-- "table", else a string.
local q = os.getenv("QUERY_STRING") or ""
if q == "table" then
	error({code = 2})
end
error("soak: uncaught error " .. q)
