package luabind

/*
#cgo !luajit pkg-config: lua5.1
#cgo luajit pkg-config: luajit
#include <stdlib.h>
#include "magnet.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime/cgo"
	"time"
	"unsafe"

	"github.com/aarzilli/golua/lua"
)

// State is one worker's Lua interpreter. It is not safe for concurrent use:
// a worker serves one request at a time.
type State struct {
	lua   *lua.State
	s     *C.mg_state
	h     cgo.Handle
	funcs []goFunc
	body  io.Reader
	res   []byte // a Go function's encoded results (gofunc.go)
}

// Chunk is a compiled script held in the state's registry.
type Chunk struct {
	fn, entry C.int
	name      string
}

// Name is the script path the chunk was compiled from.
func (c Chunk) Name() string { return c.name }

// Request is what a script sees of one request. Params and Index are
// borrowed for the duration of Run: Index holds four numbers per param
// (name offset, name length, value offset, value length) into Params.
type Request struct {
	Params []byte
	Index  []uint32
	Body   io.Reader // the request body, read only when the script asks
}

// ScriptError is a script that failed to compile or to run.
type ScriptError struct {
	Script  string
	Message string // the Lua message with its traceback
	// Memory: the run went over the memory limit (SetMemoryLimit), even if
	// the script caught the error.
	Memory bool
}

func (e *ScriptError) Error() string { return e.Message }

// NewState opens a Lua state with the standard libraries and magnet's API.
func NewState() (*State, error) {
	L := lua.NewState()
	if L == nil {
		return nil, errors.New("luabind: cannot allocate a Lua state")
	}
	L.OpenLibs()
	st := &State{lua: L}
	st.h = cgo.NewHandle(st)
	st.s = C.mg_new(cState(L), C.uintptr_t(st.h))
	if st.s == nil {
		st.h.Delete()
		L.Close()
		return nil, errors.New("luabind: setting up the magnet API failed")
	}
	registerLibs(st)
	if err := st.DoString(prelude, "=magnet.prelude"); err != nil {
		st.Close()
		return nil, fmt.Errorf("luabind: prelude: %w", err)
	}
	return st, nil
}

func cState(L *lua.State) *C.lua_State {
	return (*C.lua_State)(unsafe.Pointer(L.GetState()))
}

// Close frees the Lua state.
func (st *State) Close() {
	if st.s == nil {
		return
	}
	st.lua.Close()
	C.mg_free(st.s)
	st.s = nil
	st.h.Delete()
}

// Lua gives access to the underlying golua state, for set-up and tests.
// Do not call it while a script runs.
func (st *State) Lua() *lua.State { return st.lua }

// DoString runs Lua source in the global environment (set-up code, tests).
func (st *State) DoString(src, name string) error {
	cs := C.CString(src)
	defer C.free(unsafe.Pointer(cs))
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	if C.mg_dostring(st.s, cs, C.size_t(len(src)), cn) != 0 {
		return &ScriptError{Script: name, Message: st.errText()}
	}
	return nil
}

// Load compiles a script (luaL_loadbuffer) and enters it in magnet.cache
// with the given mtime (seconds) and zero hits.
func (st *State) Load(name string, src []byte, mtime int64) (Chunk, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var p *C.char
	if len(src) > 0 {
		p = (*C.char)(unsafe.Pointer(&src[0]))
	}
	var c Chunk
	if C.mg_load(st.s, cn, p, C.size_t(len(src)), C.int64_t(mtime), &c.fn, &c.entry) != 0 {
		return Chunk{}, &ScriptError{Script: name, Message: st.errText()}
	}
	c.name = name
	return c, nil
}

// Unload releases a chunk; its magnet.cache entry goes unless a newer Load
// of the same name replaced it.
func (st *State) Unload(c Chunk) {
	cn := C.CString(c.name)
	defer C.free(unsafe.Pointer(cn))
	C.mg_unload(st.s, cn, c.fn, c.entry)
}

// Run executes a chunk for one request in a fresh environment whose
// __index is _G. The response is then in Output and HeaderBlock, valid
// until the next Run. It returns a *ScriptError when the script failed.
func (st *State) Run(c Chunk, r *Request) error {
	var params *C.char
	var index *C.uint32_t
	if len(r.Params) > 0 {
		params = (*C.char)(unsafe.Pointer(&r.Params[0]))
	}
	if len(r.Index) >= 4 {
		index = (*C.uint32_t)(unsafe.Pointer(&r.Index[0]))
	}
	st.body = r.Body
	rc := C.mg_run(st.s, c.fn, c.entry, params, index, C.int(len(r.Index)/4))
	st.body = nil
	if rc != 0 {
		return &ScriptError{Script: c.name, Message: st.errText(), Memory: rc == C.MG_ERRLIMIT}
	}
	return nil
}

// Output is what the script printed, valid until the next Run.
func (st *State) Output() []byte { return cBytes(st.s.out) }

// HeaderBlock is the CGI header block (ending in a blank line) built from
// magnet.status and magnet.header, or nil when the script used neither and
// its printed output is the whole CGI response.
func (st *State) HeaderBlock() []byte {
	if st.s.structured == 0 {
		return nil
	}
	return cBytes(st.s.hdr)
}

// SetTimeout limits the wall time of each Run (0: no limit). The check runs
// every 10000 Lua VM instructions; LuaJIT-compiled code is not checked.
func (st *State) SetTimeout(d time.Duration) { C.mg_set_timeout(st.s, C.int64_t(d)) }

// MemoryBytes is the size of the Lua heap, counted by the state's
// allocator.
func (st *State) MemoryBytes() uint64 { return uint64(st.s.mem_used) }

// SetMemoryLimit caps the Lua heap at n bytes (0: no cap). An allocation
// past it is a Lua memory error; the run that hit it fails (Run returns a
// ScriptError with Memory set) and a full collection follows. The count
// includes garbage not yet collected.
func (st *State) SetMemoryLimit(n uint64) { C.mg_set_memory_limit(st.s, C.size_t(n)) }

// Unsound reports that a run went over the memory limit and a full
// collection could not bring the heap back under 7/8 of it: what the
// scripts keep (in _G, say) fills the limit, so later runs would fail. The
// worker should finish its response and exit, to be replaced.
func (st *State) Unsound() bool { return st.s.unsound != 0 }

func (st *State) errText() string { return string(cBytes(st.s.err)) }

func cBytes(b C.mg_buf) []byte {
	if b.len == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(b.p)), int(b.len))
}

//export magnetReadBody
func magnetReadBody(h C.uintptr_t, buf *C.char, n C.int) (ret C.int) {
	defer func() {
		if recover() != nil {
			ret = -1
		}
	}()
	st := cgo.Handle(h).Value().(*State)
	if st.body == nil || n <= 0 {
		return 0
	}
	p := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	for {
		k, err := st.body.Read(p)
		if k > 0 {
			return C.int(k)
		}
		if err == io.EOF {
			return 0
		}
		if err != nil {
			return -1
		}
	}
}
