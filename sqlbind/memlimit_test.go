package sqlbind

import (
	"path/filepath"
	"strings"
	"testing"
)

// A cursor's result lives in Go, outside the Lua heap; it counts against
// the memory limit with the other open cursors' results, so that a query
// cannot make the worker hold more than --memory-limit for a script.
func TestResultMemoryLimit(t *testing.T) {
	st := newState(t)
	st.SetMemoryLimit(8 << 20)
	db := filepath.Join(t.TempDir(), "t.db")
	out := run(t, st, "/limit.lua", `
local con = assert(luasql.sqlite3():connect(`+luaQuote(db)+`))
assert(con:execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
assert(con:execute([[INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
	SELECT x, printf('%500d', x) FROM c]]))

-- 10 MB of rows: over the limit, as nil, err
local cur, err = con:execute("SELECT id, v FROM t")
assert(cur == nil and err:find("memory", 1, true), tostring(err))

-- a small result still works
cur = assert(con:execute("SELECT id, v FROM t WHERE id <= 10"))
local n = 0
while cur:fetch() do n = n + 1 end
assert(n == 10, n)

-- two results of about 4.8 MB: the second one does not fit beside the first
local a = assert(con:execute("SELECT id, v FROM t WHERE id <= 9000"))
local b, err2 = con:execute("SELECT id, v FROM t WHERE id <= 9000")
assert(b == nil and err2:find("memory", 1, true), tostring(err2))
-- once the first is closed, it does
assert(a:close())
b = assert(con:execute("SELECT id, v FROM t WHERE id <= 9000"))
assert(b:fetch() == 1)
b:close()
con:close()
print("ok")
`)
	if strings.TrimSpace(out) != "ok" {
		t.Fatalf("got %q", out)
	}
}
