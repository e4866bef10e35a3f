package sqlbind

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
