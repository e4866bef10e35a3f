package luabind

/*
#include "magnet.h"

typedef struct mg_slow mg_slow;
mg_slow *mg_slow_new(mg_state *S);
int mg_slow_arm(mg_state *S, mg_slow *w);
int mg_slow_done(mg_slow *w);
int mg_slow_cancel(mg_slow *w);
const char *mg_slow_text(mg_slow *w, size_t *len);
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"
)

// Tracer takes the Lua traceback of a run in progress from another
// goroutine, for a slow log (slowlog.c). Its methods may be called from
// any goroutine, one at a time, while the state's own thread runs a
// script.
type Tracer struct {
	s *C.mg_state
	w *C.mg_slow
}

// Tracer makes the state's tracer. Call it on the state's own thread,
// before serving; the tracer lives as long as the state.
func (st *State) Tracer() (*Tracer, error) {
	w := C.mg_slow_new(st.s)
	if w == nil {
		return nil, errors.New("luabind: no memory for the slow log")
	}
	return &Tracer{s: st.s, w: w}, nil
}

// Traceback asks the running script for its traceback and waits up to
// wait for it: one line per stack level, innermost first
// ("/srv/x.lua:12: in function 'f'"). It returns false when the run did
// not reach a Lua instruction in time: it is inside C (a long
// string.find, os.execute, a blocking C module), in a coroutine started
// before the request, or in code LuaJIT compiled.
func (t *Tracer) Traceback(dst []byte, wait time.Duration) ([]byte, bool) {
	if C.mg_slow_arm(t.s, t.w) == 0 {
		return dst, false
	}
	deadline := time.Now().Add(wait)
	for {
		if C.mg_slow_done(t.w) != 0 {
			return t.text(dst), true
		}
		if time.Now().After(deadline) {
			if C.mg_slow_cancel(t.w) != 0 {
				return dst, false
			}
			// the hook took it up meanwhile and is writing
			for C.mg_slow_done(t.w) == 0 {
				time.Sleep(time.Millisecond)
			}
			return t.text(dst), true
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (t *Tracer) text(dst []byte) []byte {
	var n C.size_t
	p := C.mg_slow_text(t.w, &n)
	return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))...)
}
