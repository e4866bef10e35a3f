-- LuaSQL conformance, run against each driver. The test sets the global
-- T = { driver = "sqlite3"|"mysql"|"postgres", connect = {args}, ph = function(i) }
local function eq(a, b, what)
	if a ~= b then error(what .. ": got " .. tostring(a) .. ", want " .. tostring(b), 2) end
end
local function fails(f, want, what)
	local ok, err = pcall(f)
	if ok then error(what .. ": no error", 2) end
	if not string.find(tostring(err), want, 1, true) then error(what .. ": error " .. tostring(err) .. ", want " .. want, 2) end
end
local ph = T.ph
local env = assert(luasql[T.driver]())
local con = assert(env:connect(unpack(T.connect)))

-- row counts and errors
con:execute("DROP TABLE IF EXISTS t")
eq(con:execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n BIGINT, f REAL, s VARCHAR(20), b VARCHAR(20))"), 0, "create")
eq(con:execute("INSERT INTO t VALUES (1, 10, 1.5, 'one', NULL)"), 1, "insert")
eq(con:execute("INSERT INTO t VALUES (2, -3, 2.25, 'two', 'x'), (3, 9007199254740992, 0.5, 'it''s', NULL)"), 2, "insert 2")
eq(con:execute("UPDATE t SET b = 'y' WHERE id >= 2"), 2, "update")
local r, err = con:execute("SELECT nosuch FROM t")
eq(r, nil, "bad query")
assert(string.find(err, "LuaSQL: error executing query.", 1, true), err)

-- cursors: both fetch modes, types, NULLs, column names
local cur = assert(con:execute("SELECT id, n, f, s, b FROM t ORDER BY id"))
if T.whole ~= nil then eq(rawget(cur, 3) ~= nil, T.whole, "result given whole") end
local names = cur:getcolnames()
eq(table.concat(names, ","), "id,n,f,s,b", "colnames")
eq(#cur:getcoltypes(), 5, "coltypes")
if T.driver ~= "sqlite3" then eq(cur:numrows(), 3, "numrows") else eq(cur.numrows, nil, "sqlite3 numrows") end
local row = cur:fetch({}, "a")
eq(row.id, 1, "a id"); eq(row.n, 10, "a n"); eq(row.f, 1.5, "a f"); eq(row.s, "one", "a s"); eq(row.b, nil, "a NULL")
eq(math.type and math.type(row.n) or type(row.n), "number", "integer type")
row = cur:fetch(row, "n")
eq(row[1], 2, "n id"); eq(row[2], -3, "n n"); eq(row[4], "two", "n s"); eq(row[5], "y", "n b")
local id, n, f, s, b = cur:fetch()
eq(id, 3, "direct id"); eq(n, 9007199254740992, "2^53"); eq(s, "it's", "direct s"); eq(b, "y", "direct b")
eq(cur:fetch(), nil, "end")
fails(function() cur:fetch() end, "cursor is closed", "fetch after end")
eq(cur:close(), false, "close closed cursor")

-- NULL in "n" mode is luasql.null
cur = assert(con:execute("SELECT id, b FROM t WHERE id = 1"))
row = cur:fetch({}, "n")
eq(row[1], 1, "n id"); eq(row[2], luasql.null, "n NULL"); eq(#row, 2, "no hole")
eq(cur:close(), true, "close cursor")
eq(cur:close(), false, "close twice")

-- a table reused for the next row: a NULL there replaces the previous
-- row's value (nil by name, luasql.null by number); sets are raw, as in
-- LuaSQL's C
for _, mode in ipairs({ "a", "n", "an" }) do
	cur = assert(con:execute("SELECT id, b FROM t WHERE id <= 2 ORDER BY id DESC"))
	row = cur:fetch({}, mode)
	if mode ~= "n" then eq(row.id, 2, mode .. " id"); eq(row.b, "y", mode .. " b") end
	if mode ~= "a" then eq(row[1], 2, mode .. " [1]"); eq(row[2], "y", mode .. " [2]") end
	row = cur:fetch(row, mode)
	if mode ~= "n" then eq(row.id, 1, mode .. " id 2"); eq(row.b, nil, mode .. " NULL after a value") end
	if mode ~= "a" then eq(row[1], 1, mode .. " [1] 2"); eq(row[2], luasql.null, mode .. " null after a value") end
	eq(cur:fetch(row, mode), nil, mode .. " end")
end
cur = assert(con:execute("SELECT id FROM t WHERE id = 1"))
row = cur:fetch(setmetatable({}, { __newindex = function() error("not raw") end }), "an")
eq(row.id, 1, "raw a"); eq(row[1], 1, "raw n")
eq(cur:fetch(row, "x"), nil, "end after other mode")

-- cursors open together: a closed one's storage serves the next result,
-- the others keep theirs
local c1 = assert(con:execute("SELECT id, s FROM t WHERE id <= 2 ORDER BY id"))
local c2 = assert(con:execute("SELECT s, id FROM t WHERE id <= 2 ORDER BY id DESC"))
eq(c1:fetch({}, "a").s, "one", "c1 row")
eq(c1:close(), true, "c1 close")
local c3 = assert(con:execute("SELECT s FROM t WHERE id = 3"))
eq(select(2, c2:fetch()), 2, "c2 row 1")
eq(c3:fetch(), "it's", "c3 row")
eq(c3:fetch(), nil, "c3 end")
local c4 = assert(con:execute("SELECT n FROM t WHERE id = 2"))
eq(c2:fetch(), "one", "c2 row 2")
eq(c4:fetch(), -3, "c4 row")
fails(function() c1:fetch() end, "cursor is closed", "recycled cursor")
fails(function() c3:fetch() end, "cursor is closed", "finished cursor")

-- placeholders, both ways typed, and luasql.null as an argument
eq(con:execute("INSERT INTO t (id, n, f, s, b) VALUES (" .. ph(1) .. "," .. ph(2) .. "," .. ph(3) .. "," .. ph(4) .. "," .. ph(5) .. ")",
	4, 42, 0.25, "a'b\"c\\d", luasql.null), 1, "insert with placeholders")
cur = assert(con:execute("SELECT n, f, s, b FROM t WHERE id = " .. ph(1), 4))
n, f, s, b = cur:fetch()
eq(n, 42, "ph n"); eq(f, 0.25, "ph f"); eq(s, "a'b\"c\\d", "ph s"); eq(b, nil, "ph NULL")
cur:close()
-- a prepared statement, run twice
local st = assert(con:prepare("SELECT s FROM t WHERE id = " .. ph(1)))
eq(st:execute(2):fetch(), "two", "stmt 1")
eq(st:execute(3):fetch(), "it's", "stmt 2")
eq(st:close(), true, "stmt close")
fails(function() st:execute(1) end, "statement is closed", "closed statement")

-- escape
local e = con:escape("it's")
cur = assert(con:execute("SELECT '" .. e .. "'"))
eq(cur:fetch(), "it's", "escape")
cur:close()

-- transactions
assert(con:setautocommit(false))
eq(con:execute("INSERT INTO t (id, n) VALUES (10, 1)"), 1, "tx insert")
assert(con:rollback())
eq(con:execute("SELECT COUNT(*) FROM t WHERE id = 10"):fetch(), 0, "rolled back")
eq(con:execute("INSERT INTO t (id, n) VALUES (11, 1)"), 1, "tx insert 2")
assert(con:commit())
eq(con:execute("SELECT COUNT(*) FROM t WHERE id = 11"):fetch(), 1, "committed")
assert(con:setautocommit(true))

-- bad input: wrong types are Lua errors, closed objects too
fails(function() con:execute({}) end, "string expected", "sql as a table")
fails(function() con:execute("SELECT " .. ph(1), {}) end, "luasql.null expected", "table argument")
fails(function() con.execute(nil, "SELECT 1") end, "connection expected", "no self")
fails(function() cur:fetch(1) end, "table expected", "fetch into a number")
local con2, err2 = env:connect(unpack(T.bad))
eq(con2, nil, "bad connect")
assert(string.find(err2, "LuaSQL: error connecting to database.", 1, true), err2)

eq(con:close(), true, "close connection")
eq(con:close(), false, "close connection twice")
fails(function() con:execute("SELECT 1") end, "connection is closed", "closed connection")
eq(env:close(), true, "env close")
eq(env:close(), false, "env close twice")
fails(function() env:connect(unpack(T.connect)) end, "environment is closed", "closed env")
collectgarbage()
print("ok")
