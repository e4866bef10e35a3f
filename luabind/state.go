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
	"log/slog"
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
	call  Call   // the running Go function's arguments (gofunc.go)

	flush    func(header, body []byte) error // the running request's writer
	maxBody  int64                           // SetMaxBody; 0 = no limit
	bodyRead int64                           // body bytes read by this run
	up       uploads                         // magnet.request.files (multipart.go)
	mods     modules                         // require's files (modules.go)
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
	// Flush, when set, sends output while the script runs: the header
	// block (only on the first call) and printed bytes, both borrowed for
	// the call. It is called once the output reaches the size set with
	// SetOutputBuffer, and when the script calls io.stdout:flush() or
	// magnet.flush(). After the first call the headers are final: the
	// script's later header or status writes raise "headers already sent",
	// and Output holds only what was printed since the last call. An error
	// (the client is gone, it stopped reading) stops the script with
	// "client closed the connection". Without Flush the whole response is
	// kept for Output.
	Flush func(header, body []byte) error
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
	registerUploads(st)
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
	st.closeUploads()
	st.closeModules()
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
	st.flush = r.Flush
	st.bodyRead = 0
	st.s.can_flush = 0
	if r.Flush != nil {
		st.s.can_flush = 1
	}
	st.s.sent = 0
	st.s.flush_failed = 0
	st.s.body_over = 0
	st.up.lastErr = ""
	st.up.over = false
	rc := C.mg_run(st.s, c.fn, c.entry, params, index, C.int(len(r.Index)/4))
	st.body = nil
	st.flush = nil
	if len(st.up.paths) > 0 {
		st.removeUploads() // even when the script failed
	}
	if st.s.gc_errors != 0 {
		st.logFinalizerErrors(c.name)
	}
	if rc != 0 {
		return &ScriptError{Script: c.name, Message: st.errText(), Memory: rc == C.MG_ERRLIMIT}
	}
	return nil
}

// Output is what the script printed (since the last Flush of the
// Request), valid until the next Run.
func (st *State) Output() []byte { return cBytes(st.s.out) }

// HeaderBlock is the CGI header block (ending in a blank line) built from
// magnet.status and magnet.header, or nil when the script used neither and
// its printed output is the whole CGI response, or when a Flush sent it.
func (st *State) HeaderBlock() []byte {
	if st.s.structured == 0 || st.s.sent != 0 {
		return nil
	}
	return cBytes(st.s.hdr)
}

// Flushed reports that the last Run sent part of its response through the
// Request's Flush: the headers are gone, and an error can no longer
// change the status.
func (st *State) Flushed() bool { return st.s.sent != 0 }

// SetOutputBuffer makes a Run with a Request.Flush send its output once
// n bytes are buffered (0: only when the script flushes), so that the
// memory of a response stays bounded. A printed string of n bytes or
// more is sent without being copied.
func (st *State) SetOutputBuffer(n int) { st.s.flush_at = C.size_t(max(n, 0)) }

// SetMaxBody limits the request body a script may read to n bytes (0: no
// limit). Past it io.read returns nil and "magnet: request body too
// large", io.lines and magnet.request.body() raise that error, and
// BodyTooLarge reports it.
func (st *State) SetMaxBody(n int64) { st.maxBody = max(n, 0) }

// BodyTooLarge reports that the last Run read past the SetMaxBody limit.
func (st *State) BodyTooLarge() bool { return st.s.body_over != 0 }

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

// logFinalizerErrors logs the __gc finalizer errors that the run ignored
// (errors.c): they may belong to an object an earlier run left behind.
func (st *State) logFinalizerErrors(script string) {
	slog.Warn("luabind: __gc finalizer errors ignored", "script", script,
		"count", int(st.s.gc_errors), "first", C.GoString(&st.s.gc_error[0]))
	st.s.gc_errors = 0
}

func (st *State) errText() string { return string(cBytes(st.s.err)) }

func cBytes(b C.mg_buf) []byte {
	if b.len == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(b.p)), int(b.len))
}

//export magnetFlush
func magnetFlush(h C.uintptr_t, hdr *C.char, hn C.size_t, p *C.char, n C.size_t) (ret C.int) {
	defer func() {
		if recover() != nil {
			ret = -1
		}
	}()
	st := cgo.Handle(h).Value().(*State)
	if st.flush == nil {
		return -1
	}
	var header, body []byte
	if hn > 0 {
		header = unsafe.Slice((*byte)(unsafe.Pointer(hdr)), int(hn))
	}
	if n > 0 {
		body = unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
	}
	if st.flush(header, body) != nil {
		return -1
	}
	return 0
}

//export magnetReadBody
func magnetReadBody(h C.uintptr_t, buf *C.char, n C.int) (ret C.int) {
	defer func() {
		if recover() != nil {
			ret = -1
		}
	}()
	st := cgo.Handle(h).Value().(*State)
	if n <= 0 {
		return 0
	}
	return C.int(st.readBody(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))))
}

// readBody reads the request body into p under the body limit: bytes
// read, 0 at the end, -1 on an error, -2 once past the limit.
func (st *State) readBody(p []byte) int {
	if st.body == nil || len(p) == 0 {
		return 0
	}
	if st.maxBody > 0 {
		// read at most one byte past the limit, to see whether there is more
		if room := st.maxBody - st.bodyRead + 1; room < int64(len(p)) {
			p = p[:room]
		}
	}
	for {
		k, err := st.body.Read(p)
		if k > 0 {
			st.bodyRead += int64(k)
			if st.maxBody > 0 && st.bodyRead > st.maxBody {
				return -2
			}
			return k
		}
		if err == io.EOF {
			return 0
		}
		if err != nil {
			return -1
		}
	}
}
