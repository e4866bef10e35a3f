package luabind

/*
#include <stdlib.h>
#include "magnet.h"
int mg_sandbox(mg_state *S, const char *dirs, const char *mods);
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"
)

// Sandbox is --sandbox: what a script on a shared host may not do.
type Sandbox struct {
	// OpenBasedir lists the directories (symlinks resolved) under which
	// io.open, io.lines, io.input, io.output, os.remove, os.rename,
	// dofile, loadfile, Lua modules and magnet.fs.* may reach files, like
	// PHP's open_basedir. Empty: no file by name at all.
	OpenBasedir []string
	// AllowModules names the C modules require may load (default none).
	AllowModules []string
}

// Sandbox takes away os.execute, io.popen, package.loadlib, the debug
// library but debug.traceback, binary chunks and C modules outside
// sb.AllowModules, and confines file access by name to sb.OpenBasedir.
// Call it once, after NewState and before the first script.
func (st *State) Sandbox(sb Sandbox) error {
	var dirs []string
	for _, d := range sb.OpenBasedir {
		real, err := realDir(d)
		if err != nil {
			return fmt.Errorf("--open-basedir: %w", err)
		}
		dirs = append(dirs, real)
	}
	for _, m := range sb.AllowModules {
		if m == "" || strings.ContainsRune(m, 0) {
			return fmt.Errorf("--allow-module %q: not a module name", m)
		}
	}
	cd := cList(dirs)
	defer C.free(unsafe.Pointer(cd))
	cm := cList(sb.AllowModules)
	defer C.free(unsafe.Pointer(cm))
	if C.mg_sandbox(st.s, cd, cm) != 0 {
		return fmt.Errorf("luabind: sandbox: %s", st.errText())
	}
	g := basedir(dirs)
	for _, f := range []struct {
		name   string
		fn     Func
		create bool
	}{{"stat", fsStat, false}, {"readdir", fsReadDir, false}, {"readfile", fsReadFile, false}, {"writefile", fsWriteFile, true}} {
		st.Register("magnet.fs", f.name, g.guard("magnet.fs."+f.name, f.fn, f.create))
	}
	return nil
}

// cList is strings as C wants them in mg_sandbox: each NUL-terminated,
// then an empty one.
func cList(ss []string) *C.char {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(s)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	return C.CString(b.String())
}

func realDir(d string) (string, error) {
	abs, err := filepath.Abs(d)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", d)
	}
	return real, nil
}

// basedir is the Go side of the open_basedir check, for magnet.fs.*; the
// C side (sandbox.c) checks the Lua library functions.
type basedir []string

// allows reports whether path, symlinks resolved, is one of the
// directories or under one, by whole path components. With create, a
// missing last component is resolved through its parent.
func (b basedir) allows(path string, create bool) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return false
		}
		base := filepath.Base(abs)
		dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
		if err != nil || base == "/" || base == "." || base == ".." {
			return false
		}
		real = filepath.Join(dir, base)
	}
	for _, d := range b {
		if d == "/" || real == d || strings.HasPrefix(real, d+"/") {
			return true
		}
	}
	return false
}

// guard wraps a magnet.fs function whose first argument is a path. A path
// outside the basedirs is a Lua error, as in the C guards.
func (b basedir) guard(name string, fn Func, create bool) Func {
	return func(c *Call) (int, error) {
		path, err := c.CheckString(1)
		if err != nil {
			return 0, err
		}
		if !b.allows(path, create) {
			return 0, fmt.Errorf("%s: %s is outside --open-basedir (sandbox)", name, path)
		}
		return fn(c)
	}
}
