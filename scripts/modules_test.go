package scripts

import (
	"path/filepath"
	"testing"

	"github.com/magnet-fcgi/magnet/luabind"
)

// TestModuleLookupNoAlloc: with modules loaded, a Lookup allocates
// nothing, whether inotify watches them or each Lookup stats them; and a
// changed module is reloaded in both modes.
func TestModuleLookupNoAlloc(t *testing.T) {
	for _, noWatch := range []bool{false, true} {
		dir := t.TempDir()
		c := newCache(t, Config{DocRoots: []string{dir}, NoWatch: noWatch})
		if err := c.st.SetModules(luabind.Modules{Roots: []string{dir}}); err != nil {
			t.Fatal(err)
		}
		mod := filepath.Join(dir, "m.lua")
		write(t, mod, `return {v = "v1"}`)
		script := filepath.Join(dir, "s.lua")
		write(t, script, `print(require("m").v)`)
		run := func() string {
			t.Helper()
			chunk, err := c.Lookup([]byte(script))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.st.Run(chunk, &luabind.Request{}); err != nil {
				t.Fatal(err)
			}
			return string(c.st.Output())
		}
		if got := run(); got != "v1" {
			t.Fatalf("noWatch=%v: %q", noWatch, got)
		}
		run()
		path := []byte(script)
		if n := testing.AllocsPerRun(100, func() { c.Lookup(path) }); n != 0 {
			t.Errorf("noWatch=%v: %v allocations per Lookup", noWatch, n)
		}
		write(t, mod, `return {v = "v22"}`)
		if got := run(); got != "v22" {
			t.Fatalf("noWatch=%v, after the edit: %q", noWatch, got)
		}
	}
}
