package worker

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/protocol"
	"github.com/magnet-fcgi/magnet/scripts"
)

// Modules through a real worker: require finds modules in the document
// root (?.lua, ?/init.lua) and in --lua-path, an edited module is live
// from the next request, and Debian's C modules load.

func moduleFiles(t *testing.T, root string) string {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "pkg"), 0o755)
	writeScript(t, root, "greet.lua", `return {hello = function() return "v1" end}`)
	// pkg holds greet's table: it must reload with it
	writeScript(t, filepath.Join(root, "pkg"), "init.lua", `local g = require "greet" return {hi = function() return "pkg:" .. g.hello() end}`)
	return writeScript(t, root, "use.lua", `
		print("Content-Type: text/plain\r\n\r\n")
		print(require("greet").hello(), ";", require("pkg").hi())
		local q = os.getenv("QUERY_STRING")
		if q and q ~= "" then print(";", require(q).where) end`)
}

func TestModules(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(root string) Config
	}{
		{"watched", func(root string) Config { return Config{Scripts: scriptsIn(root), Debug: true} }},
		{"stat", func(root string) Config {
			return Config{Scripts: scripts.Config{DocRoots: []string{root}, NoWatch: true}}
		}},
		{"sandbox", func(root string) Config {
			return Config{Scripts: scriptsIn(root), Sandbox: &luabind.Sandbox{OpenBasedir: []string{root}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			script := moduleFiles(t, root)
			sock, _ := startServer(t, tc.cfg(root))
			c := dial(t, sock)
			if st, body, _ := get(t, c, script, true); st != 200 || body != "v1;pkg:v1" {
				t.Fatalf("first request: %d %q", st, body)
			}
			// edited at once after the request that loaded it
			writeScript(t, root, "greet.lua", `return {hello = function() return "v22" end}`)
			if st, body, _ := get(t, c, script, true); st != 200 || body != "v22;pkg:v22" {
				t.Fatalf("after the edit: %d %q", st, body)
			}
			// and again, the module now watched
			writeScript(t, root, "greet.lua", `return {hello = function() return "v333" end}`)
			if st, body, _ := get(t, c, script, true); st != 200 || body != "v333;pkg:v333" {
				t.Fatalf("after the second edit: %d %q", st, body)
			}
			// a module that fails to load is the script's error; fixed, it loads
			writeScript(t, root, "greet.lua", `return {hello = function() return "v4" end`)
			if st, body, _ := get(t, c, script, true); st != 500 {
				t.Fatalf("broken module: %d %q", st, body)
			}
			writeScript(t, root, "greet.lua", `return {hello = function() return "v5" end}`)
			if st, body, _ := get(t, c, script, true); st != 200 || body != "v5;pkg:v5" {
				t.Fatalf("fixed module: %d %q", st, body)
			}
		})
	}
}

func TestLuaPath(t *testing.T) {
	root, lib := t.TempDir(), t.TempDir()
	script := moduleFiles(t, root)
	writeScript(t, lib, "greet.lua", `return {hello = function() return "lib" end}`)
	writeScript(t, lib, "extra.lua", `return {where = "lib"}`)
	sock, _ := startServer(t, Config{Scripts: scriptsIn(root), Modules: luabind.Modules{Path: lib + "/?.lua"}})
	c := dial(t, sock)
	// --lua-path comes first, then the document root
	if st, body, _ := get(t, c, script, true, queryPair("extra")); st != 200 || body != "lib;pkg:lib;lib" {
		t.Fatalf("%d %q", st, body)
	}
}

// TestCModules: Debian's lfs (lua-filesystem) and cjson (lua-cjson) load
// through the default package.cpath, in both builds (-tags luajit).
func TestCModules(t *testing.T) {
	dir := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]
	testutil.NeedFile(t, "/usr/lib/"+dir+"/lua/5.1/lfs.so", "lua-filesystem")
	testutil.NeedFile(t, "/usr/lib/"+dir+"/lua/5.1/cjson.so", "lua-cjson")
	root := t.TempDir()
	script := writeScript(t, root, "c.lua", `
		local lfs, cjson = require "lfs", require "cjson"
		print("Content-Type: text/plain\r\n\r\n", lfs.attributes(os.getenv("SCRIPT_FILENAME"), "mode"), ";", cjson.encode({a = {1, 2}}))`)
	sock, _ := startServer(t, Config{Scripts: scriptsIn(root)})
	if st, body, _ := get(t, dial(t, sock), script, true); st != 200 || body != `file;{"a":[1,2]}` {
		t.Fatalf("%d %q", st, body)
	}
}

func queryPair(q string) protocol.Pair { return protocol.Pair{Name: "QUERY_STRING", Value: q} }
