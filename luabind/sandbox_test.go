package luabind

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

func sandboxed(t *testing.T, sb Sandbox) *State {
	t.Helper()
	st := newState(t)
	if err := st.Sandbox(sb); err != nil {
		t.Fatal(err)
	}
	return st
}

// cModule builds a real Lua C module named name into dir.
func cModule(t *testing.T, dir, name string) {
	t.Helper()
	// $CC is the cross compiler when the tests run for another
	// architecture (make test-arm64): the module must match the binary.
	cc := os.Getenv("CC")
	if cc == "" {
		cc = testutil.LookPath(t, "cc", "gcc")
	}
	pkg := "lua5.1"
	if LuaJIT {
		pkg = "luajit"
	}
	flags, err := exec.Command("pkg-config", "--cflags", pkg).Output()
	if err != nil {
		testutil.Missing(t, "pkg-config "+pkg, "pkg-config", err)
	}
	src := filepath.Join(dir, name+".c")
	code := "#include <lua.h>\nint luaopen_" + name + "(lua_State *L) { lua_pushstring(L, \"C module " + name + "\"); return 1; }\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(strings.Fields(string(flags)), "-shared", "-fPIC", "-o", filepath.Join(dir, name+".so"), src)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
}

func TestSandboxRefuses(t *testing.T) {
	root := t.TempDir()
	st := sandboxed(t, Sandbox{OpenBasedir: []string{root}})
	for name, src := range map[string]string{
		"shadow":      `io.open("/etc/shadow")`,
		"environ":     `io.open("/proc/self/environ")`,
		"lines":       `for l in io.lines("/etc/passwd") do end`,
		"input":       `io.input("/etc/passwd")`,
		"dofile":      `dofile("/etc/passwd")`,
		"loadfile":    `loadfile("/etc/passwd")`,
		"stdin":       `loadfile()`,
		"remove":      `os.remove("/tmp/x")`,
		"fsread":      `magnet.fs.readfile("/etc/passwd")`,
		"fsstat":      `magnet.fs.stat("/etc")`,
		"dotdot":      `io.open("` + root + `/../../etc/passwd")`,
		"prefix":      `io.open("` + root + `x/f")`,
		"execute":     `os.execute("true")`,
		"popen":       `io.popen("id")`,
		"loadlib":     `package.loadlib("/lib/x86_64-linux-gnu/libc.so.6", "system")`,
		"getregistry": `debug.getregistry()`,
		"getinfo":     `debug.getinfo(1)`,
		"binary":      `loadstring(string.dump(function() end))`,
		"binaryload":  `local s = string.dump(function() end); load(function() local r = s; s = nil; return r end)()`,
		"loadeddebug": `package.loaded.debug.sethook()`,
		"ffi":         `require "ffi"`,
	} {
		want := "sandbox"
		switch name {
		case "getregistry", "getinfo", "loadeddebug", "binaryload":
			want = "" // a call of nil, or a failed load
		case "ffi":
			want = "module 'ffi' not found"
		}
		mustFail(t, st, name, src, want)
	}
}

func TestSandboxAllows(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "data.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "mod.lua"), []byte(`return "lua module"`), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "outmod.lua"), []byte(`return "outside"`), 0o644); err != nil {
		t.Fatal(err)
	}
	cModule(t, root, "cmod")
	cModule(t, root, "okmod")
	st := sandboxed(t, Sandbox{OpenBasedir: []string{root}, AllowModules: []string{"okmod"}})
	c := load(t, st, "allowed", `
		package.path = "`+root+`/?.lua;`+outside+`/?.lua"
		package.cpath = "`+root+`/?.so"
		local f = assert(io.open("`+root+`/data.txt"))
		print(f:read("*l")); f:close()
		for l in io.lines("`+root+`/data.txt") do print(l) end
		assert(io.open("`+root+`/new.txt", "w")):close()
		print(magnet.fs.readfile("`+root+`/data.txt"))
		assert(magnet.fs.writefile("`+root+`/new2.txt", "x"))
		print(require "mod")
		print(require "okmod")
		print(pcall(require, "outmod"))
		print(pcall(require, "cmod"))
		print(debug.traceback("tb") ~= nil)
		print(loadstring("return 1")())
	`)
	got := run(t, st, c, nil)
	for _, want := range []string{"hellohellohello\n", "lua module", "C module okmod", "outside --open-basedir", "no C module 'cmod'", "true1"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	mustFail(t, st, "symlink", `io.open("`+root+`/evil")`, "outside --open-basedir")
}

// Without the sandbox, lua-magnet's behaviour stays: files anywhere, C
// modules, os.execute.
func TestNoSandbox(t *testing.T) {
	dir := t.TempDir()
	cModule(t, dir, "cmod")
	st := newState(t)
	c := load(t, st, "free", `
		package.cpath = "`+dir+`/?.so"
		print(io.open("/etc/passwd") ~= nil, require "cmod", os.execute("true") == 0 or os.execute("true") == true, debug.getinfo ~= nil)
	`)
	if got := run(t, st, c, nil); got != "trueC module cmodtruetrue" {
		t.Fatalf("got %q", got)
	}
}

func TestSandboxNoBasedir(t *testing.T) {
	st := sandboxed(t, Sandbox{})
	mustFail(t, st, "any", `io.open("/tmp")`, "outside --open-basedir")
	if err := newState(t).Sandbox(Sandbox{OpenBasedir: []string{"/nonexistent-dir"}}); err == nil {
		t.Fatal("a missing --open-basedir directory was accepted")
	}
}
