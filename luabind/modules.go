package luabind

/*
#include <stdlib.h>
#include "modules.h"
*/
import "C"

import (
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"
)

// Modules says where require looks for modules.
type Modules struct {
	// Path and CPath go in front of package.path and package.cpath
	// (--lua-path, --lua-cpath): templates separated by ";", as in
	// LUA_PATH.
	Path, CPath string
	// Roots are the document roots: each adds ROOT/?.lua and
	// ROOT/?/init.lua after Path and ahead of Lua's defaults.
	Roots []string
}

// SetModules sets require's search path and starts noting which file
// each Lua module comes from (LoadedModules), so that a changed module
// can be reloaded (ReloadModules). Call it once, after Sandbox.
func (st *State) SetModules(m Modules) error {
	var path []string
	if m.Path != "" {
		path = append(path, strings.Trim(m.Path, ";"))
	}
	for _, r := range m.Roots {
		abs, err := filepath.Abs(r)
		if err != nil {
			return fmt.Errorf("module path: %w", err)
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		path = append(path, abs+"/?.lua", abs+"/?/init.lua")
	}
	if st.mods.c == nil {
		st.mods.c = (*C.mg_modules)(C.calloc(1, C.sizeof_mg_modules))
	}
	cp := C.CString(strings.Join(path, ";"))
	defer C.free(unsafe.Pointer(cp))
	cc := C.CString(strings.Trim(m.CPath, ";"))
	defer C.free(unsafe.Pointer(cc))
	if C.mg_modules_setup(st.s, st.mods.c, cp, cc) != 0 {
		return fmt.Errorf("luabind: module path: %s", st.errText())
	}
	return nil
}

// ModulesLoaded reports that require loaded Lua modules from files since
// the last LoadedModules: a memory load, for every request.
func (st *State) ModulesLoaded() bool { return st.mods.c != nil && st.mods.c.loaded.len > 0 }

// LoadedModule is a Lua module require loaded from a file.
type LoadedModule struct {
	Name, File string
	// Stat is the file's "mtime:size:inode" when it was loaded ("" if
	// unknown), to compare with StatID.
	Stat string
}

// StatID is a file's "mtime:size:inode" as LoadedModule.Stat has it.
func StatID(mtimeSec, mtimeNsec, size int64, ino uint64) string {
	return fmt.Sprintf("%d.%09d:%d:%d", mtimeSec, mtimeNsec, size, ino)
}

// LoadedModules returns the Lua modules require loaded from files since
// the last call.
func (st *State) LoadedModules() []LoadedModule {
	if !st.ModulesLoaded() {
		return nil
	}
	parts := strings.Split(string(cBytes(st.mods.c.loaded)), "\x00")
	st.mods.c.loaded.len = 0
	var l []LoadedModule
	for i := 0; i+2 < len(parts); i += 3 {
		l = append(l, LoadedModule{Name: parts[i], File: parts[i+1], Stat: parts[i+2]})
		st.mods.names = append(st.mods.names, parts[i])
	}
	return l
}

// ReloadModules drops every Lua module require loaded from a file from
// package.loaded, so that the next require of each runs its file again:
// all of them, since a module may hold another's table. What a module
// kept in its own upvalues starts afresh; what it put in _G stays.
func (st *State) ReloadModules() error {
	if len(st.mods.names) == 0 {
		return nil
	}
	var b strings.Builder
	for _, n := range st.mods.names {
		if n != "" && !strings.ContainsRune(n, 0) {
			b.WriteString(n)
			b.WriteByte(0)
		}
	}
	b.WriteByte(0)
	st.mods.names = st.mods.names[:0]
	cs := C.CString(b.String())
	defer C.free(unsafe.Pointer(cs))
	if C.mg_modules_unload(st.s, cs) != 0 {
		return fmt.Errorf("luabind: reloading modules: %s", st.errText())
	}
	return nil
}

type modules struct {
	c     *C.mg_modules // nil until SetModules
	names []string      // the modules loaded from files so far
}

func (st *State) closeModules() {
	if st.mods.c != nil {
		C.free(unsafe.Pointer(st.mods.c.loaded.p))
		C.free(unsafe.Pointer(st.mods.c))
		st.mods.c = nil
	}
}
