package sqlbind

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/luabind"
)

// TestBadInput: misuse is a Lua error or nil, err as documented, never a
// crash, and the state serves the next script.
func TestBadInput(t *testing.T) {
	st := newState(t)
	db := luaQuote(filepath.Join(t.TempDir(), "b.db"))
	run(t, st, "/setup.lua", `_G.C = assert(luasql.sqlite3():connect(`+db+`))
		assert(C:execute("CREATE TABLE t (a)"))`)
	errs := map[string]string{
		`C.execute("SELECT 1")`:              "connection expected",
		`C:execute()`:                        "string expected, got nil",
		`C:execute("SELECT ?", print)`:       "luasql.null expected, got function",
		`C:execute("SELECT ?", C)`:           "luasql.null expected, got table",
		`C:execute("SELECT 1"):fetch({}, 5)`: "string expected, got number",
		`C:prepare("SELECT ?"):execute({})`:  "bad argument #2 to 'execute'",
		`C:prepare({})`:                      "string expected, got table",
		`C:escape(nil)`:                      "string expected, got nil",
		`luasql.sqlite3():connect({})`:       "string expected, got table",
		`luasql.sqlite3().connect()`:         "environment expected",
		`luasql.null.x = 1`:                  "read-only",
		`C:execute("SELECT 1"):numrows()`:    "attempt to call method 'numrows'",
		`C:execute("INSERT INTO t VALUES (?)", unpack({}, 1, 100000))`: "",
	}
	for src, want := range errs {
		_, err := try(st, "/bad.lua", src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", src, err, want)
		}
	}
	// SQL errors are nil, err.
	out := run(t, st, "/sqlerr.lua", `print(C:execute("SELEC 1")) print(C:prepare("SELECT nosuch FROM t"))`)
	if strings.Count(out, "nilLuaSQL: error executing query. SQLite3: ") != 2 {
		t.Errorf("SQL errors: %q", out)
	}
	if out := run(t, st, "/ok.lua", `print(C:execute("SELECT 40 + 2"):fetch())`); out != "42" {
		t.Errorf("after the bad input: %q", out)
	}
}

// TestCollected: objects a script drops are closed by the collector, so
// connections opened on every request do not pile up on the server.
func TestCollected(t *testing.T) {
	m := needMariaDB(t)
	st := newState(t)
	run(t, st, "/setup.lua", `_G.ARGS = {`+mariaArgs(m, m.Database)+`}`)
	for range 20 {
		run(t, st, "/leak.lua", `local con = assert(luasql.mysql():connect(unpack(ARGS)))
			assert(con:execute("SELECT 1"))`)
	}
	run(t, st, "/gc.lua", `collectgarbage() collectgarbage()`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := m.Connections()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left open after a collection", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSandbox: under --sandbox SQLite reaches only files under
// --open-basedir, and ATTACH, which opens any file, is refused.
func TestSandbox(t *testing.T) {
	st, err := luabind.NewState()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	inside, outside := t.TempDir(), t.TempDir()
	sb := luabind.Sandbox{OpenBasedir: []string{inside}}
	if err := st.Sandbox(sb); err != nil {
		t.Fatal(err)
	}
	if err := Register(st, &sb); err != nil {
		t.Fatal(err)
	}
	in, out := luaQuote(filepath.Join(inside, "a.db")), luaQuote(filepath.Join(outside, "b.db"))
	got := run(t, st, "/sandbox.lua", `
local env = luasql.sqlite3()
local con = assert(env:connect(`+in+`))
assert(con:execute("CREATE TABLE t (a)"))
print(select(2, env:connect(`+out+`)), "|")
print(select(2, env:connect("file:" .. `+in+`)), "|")
print(select(2, env:connect(`+in+` .. "?mode=rw")), "|")
print(select(2, con:execute("ATTACH DATABASE " .. `+luaQuote("'"+filepath.Join(outside, "c.db")+"'")+` .. " AS x")), "|")
print(assert(luasql.sqlite3():connect(":memory:")):execute("SELECT 1"):fetch())`)
	for _, want := range []string{"is outside --open-basedir (sandbox)|", "a plain file name is needed under --sandbox|",
		"a plain file name is needed under --sandbox|", "not authorized|", "|1"} {
		if !strings.Contains(got, want) {
			t.Errorf("sandbox: %q lacks %q", got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "b.db")); err == nil {
		t.Error("a database was created outside --open-basedir")
	}
}

// TestWholeCursorTampered: a script that writes into a cursor given whole
// gets errors, not a crash or a loop as long as the number it wrote.
func TestWholeCursorTampered(t *testing.T) {
	st := newState(t)
	run(t, st, "/setup.lua", `_G.C = assert(luasql.sqlite3():connect(":memory:"))`)
	for src, want := range map[string]string{
		`local cur = C:execute("SELECT 1, 2") cur[3] = 2^31 cur:fetch({}, "n")`: "cursor expected",
		`local cur = C:execute("SELECT 1, 2") cur[3] = "x" cur:fetch()`:         "cursor expected",
		`local cur = C:execute("SELECT 1, 2") cur[1] = 5 cur:fetch()`:           "cursor is closed",
		`local cur = C:execute("SELECT 1, 2") cur[2] = {} cur:fetch({}, "a")`:   "index is nil",
		`local cur = C:execute("SELECT 1, 2") cur.fetch(nil)`:                   "cursor expected, got nil",
		`local cur = C:execute("SELECT 1, 2") cur.close(5)`:                     "cursor expected, got number",
		`local cur = C:execute("SELECT 1, 2") cur:close() cur:getcolnames()`:    "cursor is closed",
	} {
		if _, err := try(st, "/bad.lua", src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", src, err, want)
		}
	}
	if out := run(t, st, "/ok.lua", `local cur = C:execute("SELECT 1, 2") cur[4] = -7 print(cur:fetch())`); out != "nilnil" {
		t.Errorf("a position written below 0: %q", out)
	}
}
