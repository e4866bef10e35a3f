-- LuaSQL's objects over the Go functions in __luasql (sqlbind.go). An
-- object is a table holding its handle under a private key, and a
-- newproxy whose finalizer closes the handle when the object is collected.
local G = __luasql
__luasql = nil
local newproxy, setmetatable, select, type, error, unpack, rawget, rawset =
	newproxy, setmetatable, select, type, error, unpack, rawget, rawset

local H, P, DRV = {}, {}, {}

local null = setmetatable({}, {
	__tostring = function() return "luasql.null" end,
	__newindex = function() error("luasql.null is read-only", 2) end,
	__metatable = false,
})

-- Every object's proxy shares one metatable, whose finalizer finds the
-- handle in a table with weak keys (Lua 5.1 keeps a key that is being
-- finalized until its finalizer has run): no closure and no metatable per
-- object.
local handleOf = setmetatable({}, { __mode = "k" })
local template
if newproxy then
	template = newproxy(true)
	getmetatable(template).__gc = function(p)
		local h = handleOf[p]
		if h then G.close(h) end
	end
end

local function new(meta, h)
	local o = { [H] = h }
	if template then
		local p = newproxy(template)
		handleOf[p] = h
		o[P] = p
	end
	return setmetatable(o, meta)
end

local function check(self, what)
	local h = type(self) == "table" and rawget(self, H)
	if not h then
		error("bad argument #1 (LuaSQL: " .. what .. " expected, got " .. type(self) .. ")", 3)
	end
	return h
end

-- nonull turns luasql.null arguments into nil.
local function nonull(n, ...)
	if n == 0 then return end
	if n == 1 then
		if (...) == null then return nil end
		return ...
	end
	if n > 8 then
		local t = { ... }
		for i = 1, n do
			if t[i] == null then t[i] = nil end
		end
		return unpack(t, 1, n)
	end
	for i = 1, n do
		if select(i, ...) == null then
			local t = { ... }
			for j = i, n do
				if t[j] == null then t[j] = nil end
			end
			return unpack(t, 1, n)
		end
	end
	return ...
end

local Cursor, CursorN, Statement, Conn, Env = {}, {}, {}, {}, {}
local protected = "LuaSQL: you're not allowed to get this metatable"

local cursorMeta, wholeMeta -- by driver: below

-- result makes the cursor of a result: a handle to one held in Go, or a
-- small result given whole (the table that luabind's rows.c fetches
-- from, which is the cursor itself).
local function result(drv, a, b)
	if b == true then return new(cursorMeta[drv], a) end
	if type(a) == "table" then
		a[6] = null
		return setmetatable(a, wholeMeta[drv])
	end
	return a, b
end

-- Connections

function Conn:execute(sql, ...)
	local h = check(self, "connection")
	return result(rawget(self, DRV), G.execute(h, sql, nonull(select("#", ...), ...)))
end

function Conn:prepare(sql)
	local h = check(self, "connection")
	local s, err = G.prepare(h, sql)
	if not s then return nil, err end
	local o = new({ __index = Statement, __metatable = protected }, s)
	o[DRV] = rawget(self, DRV)
	return o
end

function Conn:commit() return G.commit(check(self, "connection")) end
function Conn:rollback() return G.rollback(check(self, "connection")) end
function Conn:setautocommit(on) return G.setautocommit(check(self, "connection"), on) end
function Conn:escape(s) return G.escape(check(self, "connection"), s) end
function Conn:close() return G.close(check(self, "connection")) end

function Statement:execute(...)
	local h = check(self, "statement")
	return result(rawget(self, DRV), G.stmt.execute(h, nonull(select("#", ...), ...)))
end
function Statement:close() return G.close(check(self, "statement")) end

-- Cursors

-- release spares the finalizer of a cursor that ended its call to Go.
local function release(self)
	local p = rawget(self, P)
	if p then handleOf[p] = nil end
end

local function direct(self, ...)
	if select("#", ...) == 0 then
		release(self)
		return nil
	end
	return ...
end

-- fetch is on every row's path: Go checks t and mode, and says which is
-- wrong, so that a row costs no type() calls.
function Cursor:fetch(t, mode)
	local h = type(self) == "table" and rawget(self, H) or check(self, "cursor")
	if t == nil then return direct(self, G.fetch(h)) end
	-- Go fills t; a numbered NULL comes back as nil, and n says to look.
	local ok, n = G.fetch(h, t, mode)
	if ok then
		if n then
			for i = 1, n do
				if rawget(t, i) == nil then rawset(t, i, null) end
			end
		end
		return t
	end
	if ok == false then
		local want, got = "table", t
		if n == 2 then want, got = "string", mode end
		error("bad argument #" .. n .. " to 'fetch' (" .. want .. " expected, got " .. type(got) .. ")", 2)
	end
	release(self)
	return nil
end

function Cursor:getcolnames() return G.colnames(check(self, "cursor")) end
function Cursor:getcoltypes() return G.coltypes(check(self, "cursor")) end
function Cursor:close()
	local h = check(self, "cursor")
	release(self)
	return G.close(h)
end

-- MySQL's and PostgreSQL's cursors have numrows, SQLite's does not.
for k, v in pairs(Cursor) do CursorN[k] = v end
function CursorN:numrows() return G.numrows(check(self, "cursor")) end

-- A cursor given whole: fetch is rows.c's; the table holds the values
-- at 1 (nil once closed), the names at 2, the number of columns at 3, the
-- number of values at 5 and the types at 7, each ended by a "\0".
local Whole, WholeN = { fetch = G.rows }, {}

-- whole returns self, a cursor given whole and open (or closed too, if
-- closed is true), or raises LuaSQL's error.
local function whole(self, closed)
	if type(self) ~= "table" or type(rawget(self, 3)) ~= "number" then
		error("bad argument #1 (LuaSQL: cursor expected, got " .. type(self) .. ")", 3)
	end
	if not closed and rawget(self, 1) == nil then error("LuaSQL: cursor is closed", 0) end
	return self
end

local function copy(l)
	local t = {}
	for i = 1, #l do t[i] = l[i] end
	return t
end

function Whole:getcolnames() return copy(rawget(whole(self), 2)) end
function Whole:getcoltypes()
	local t = {}
	for ty in string.gmatch(rawget(whole(self), 7), "(%Z*)%z") do t[#t + 1] = ty end
	return t
end
function Whole:close()
	local open = rawget(whole(self, true), 1) ~= nil
	rawset(self, 1, nil)
	return open
end
for k, v in pairs(Whole) do WholeN[k] = v end
function WholeN:numrows() return rawget(whole(self), 5) / rawget(self, 3) end

cursorMeta = {
	mysql = { __index = CursorN, __metatable = protected },
	postgres = { __index = CursorN, __metatable = protected },
	sqlite3 = { __index = Cursor, __metatable = protected },
}
wholeMeta = {
	mysql = { __index = WholeN, __metatable = protected },
	postgres = { __index = WholeN, __metatable = protected },
	sqlite3 = { __index = Whole, __metatable = protected },
}

-- Environments

local connMeta = { __index = Conn, __metatable = protected }

function Env:connect(...)
	local e = type(self) == "table" and rawget(self, H)
	if not e then
		error("bad argument #1 (LuaSQL: environment expected, got " .. type(self) .. ")", 2)
	end
	if e.closed then error("LuaSQL: environment is closed", 2) end
	local h, err = G.connect(e.driver, ...)
	if not h then return nil, err end
	local o = new(connMeta, h)
	o[DRV] = e.driver
	return o
end

function Env:close()
	local e = type(self) == "table" and rawget(self, H)
	if not e then
		error("bad argument #1 (LuaSQL: environment expected, got " .. type(self) .. ")", 2)
	end
	if e.closed then return false end
	e.closed = true
	return true
end

local envMeta = { __index = Env, __metatable = protected }

local luasql = {
	null = null,
	_COPYRIGHT = "magnet's LuaSQL on Go's database/sql",
	_DESCRIPTION = "LuaSQL's API for MySQL/MariaDB, PostgreSQL and SQLite3",
	_VERSION = "LuaSQL 2.6 (magnet)",
}
for _, d in ipairs({ "mysql", "postgres", "sqlite3" }) do
	luasql[d] = function()
		return setmetatable({ [H] = { driver = d } }, envMeta)
	end
	package.preload["luasql." .. d] = function() return luasql end
end
_G.luasql = luasql
