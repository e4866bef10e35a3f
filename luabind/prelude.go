package luabind

// prelude is Lua code run once per state: helpers that are simplest in Lua
// and the lazy fields of magnet.request that are not params (get, post,
// files, cookies, headers).
const prelude = `
local magnet, string, tonumber, rawset, type, pairs = magnet, string, tonumber, rawset, type, pairs

function magnet.urlencode(s)
	return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function add(t, k, v)
	local old = t[k]
	if old == nil then t[k] = v
	elseif type(old) == "table" then old[#old + 1] = v
	else t[k] = {old, v} end
end

function magnet.parse_cookies(s)
	local t = {}
	if not s then return t end
	for pair in string.gmatch(s, "[^;]+") do
		local k, v = string.match(pair, "^%s*([^=]-)%s*=%s*(.-)%s*$")
		if k and t[k] == nil then t[k] = v end
	end
	return t
end

-- multipart/form-data: fields and files parsed in Go (multipart.go), which
-- streams the files to the upload directory; one flat list comes back.
local multipart = rawget(magnet, "_multipart")
rawset(magnet, "_multipart", nil)
local function form(r)
	local err = rawget(r, "_form_err")
	if err then error(err, 0) end
	local ct = r.content_type or ""
	local post, files = {}, {}
	if string.find(string.lower(ct), "multipart/form-data", 1, true) then
		local l, e = multipart(ct, rawget(r, "_body"))
		if not l then
			rawset(r, "_form_err", "magnet.request: " .. e)
			error("magnet.request: " .. e, 0)
		end
		local i, n = 1, #l
		while i <= n do
			if l[i] == "f" then
				add(post, l[i + 1], l[i + 2])
				i = i + 3
			else
				local k, old = l[i + 1], files[l[i + 1]]
				local f = {filename = l[i + 2], content_type = l[i + 3],
					size = tonumber(l[i + 4]), path = l[i + 5]}
				if old == nil then files[k] = f
				elseif old.path then files[k] = {old, f}
				else old[#old + 1] = f end
				i = i + 6
			end
		end
	elseif string.find(ct, "application/x-www-form-urlencoded", 1, true) then
		post = magnet.parse_query(r.body())
	end
	rawset(r, "post", post)
	rawset(r, "files", files)
	return post, files
end

local lazy = {
	get = function(r) return magnet.parse_query(r.query) end,
	post = function(r) local p = form(r) return p end,
	files = function(r) local _, f = form(r) return f end,
	cookies = function(r) return magnet.parse_cookies(r.params.HTTP_COOKIE) end,
	headers = function(r)
		local h = {}
		for k, v in pairs(r.params) do
			local name = string.match(k, "^HTTP_(.+)$")
			if name then h[string.lower(string.gsub(name, "_", "-"))] = v end
		end
		if r.content_type then h["content-type"] = r.content_type end
		return h
	end,
}

-- magnet.request's fields that are not params (request.c makes those):
-- made on first use and kept in the table.
debug.getregistry()["magnet.request_lazy"] = function(r, k)
	local f = lazy[k]
	if not f then return nil end
	local v = f(r)
	rawset(r, k, v)
	return v
end
`
