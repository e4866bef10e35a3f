package sqlbind

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/luabind"
)

func newState(t testing.TB) *luabind.State {
	t.Helper()
	st, err := luabind.NewState()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := Register(st, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

// run runs src as a script and returns its output, or fails the test.
func run(t testing.TB, st *luabind.State, name, src string) string {
	t.Helper()
	out, err := try(st, name, src)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func try(st *luabind.State, name, src string) (string, error) {
	c, err := st.Load(name, []byte(src), 1700000000)
	if err != nil {
		return "", err
	}
	defer st.Unload(c)
	if err := st.Run(c, &luabind.Request{}); err != nil {
		return "", err
	}
	return string(st.Output()), nil
}

// conformance runs testdata/conformance.lua with the set-up in setup.
func conformance(t *testing.T, st *luabind.State, setup string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "conformance.lua"))
	if err != nil {
		t.Fatal(err)
	}
	// once with small results given to Lua whole (rows.c fetches them),
	// once with every result held in Go
	defer func(v int) { wholeVals = v }(wholeVals)
	for _, whole := range []bool{true, false} {
		if !whole {
			wholeVals = -1
		}
		mode := fmt.Sprintf("\nT.whole = %v\n", whole)
		if out := run(t, st, "/conformance.lua", setup+mode+string(src)); !strings.HasSuffix(out, "ok") {
			t.Fatalf("conformance (whole %v): %q", whole, out)
		}
	}
}

func TestSQLiteConformance(t *testing.T) {
	st := newState(t)
	db := filepath.Join(t.TempDir(), "t.db")
	conformance(t, st, `T = { driver = "sqlite3", connect = {`+luaQuote(db)+`},
		bad = {`+luaQuote(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))+`},
		ph = function(i) return "?" end }`)
}

func luaQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
