package luabind

/*
#include <stdio.h>
#include <stdlib.h>
#include "magnet.h"

// Reading arguments: none of these allocates in Lua, so none can raise.
static const char *mg_tolstring(lua_State *L, int i, size_t *n) { return lua_type(L, i) == LUA_TSTRING ? lua_tolstring(L, i, n) : NULL; }
static int mg_numstr(lua_State *L, int i, char *buf, int n) { return snprintf(buf, n, "%.14g", (double)lua_tonumber(L, i)); }
static int mg_type(lua_State *L, int i) { return lua_type(L, i); }
static double mg_tonumber(lua_State *L, int i) { return lua_tonumber(L, i); }
static int mg_toboolean(lua_State *L, int i) { return lua_toboolean(L, i); }
static const char *mg_typename(lua_State *L, int i) { return lua_typename(L, lua_type(L, i)); }
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime/cgo"
	"unsafe"
)

// Func is a Lua function implemented in Go. It reads its arguments and
// gives its results through c and returns how many it gave. A returned
// error becomes a Lua error that the script can catch with pcall.
type Func func(c *Call) (int, error)

type goFunc struct {
	name string
	fn   Func
}

// Call is the argument and result stack of one Go function call. Reading
// an argument calls no Lua function that can raise: the trampoline has
// read the first MG_ARGS of them, and the others are read with calls that
// neither allocate nor call metamethods. Results are not pushed from Go:
// they are encoded (the MG_OP_* codes of magnet.h) and the C trampoline
// pushes them after Go has returned, checking stack space, so that no Lua
// error (a memory error, a raising __gc finalizer, a stack overflow) can
// unwind through Go frames.
type Call struct {
	st    *State
	L     *C.lua_State
	name  string
	nargs int
	args  *[C.MG_ARGS]C.mg_arg // read by the trampoline
	nread int                  // how many of args it read
}

// Register makes fn callable from Lua as table.name ("" for a global),
// creating the table path (for example "magnet.fs") when it is missing.
// It panics if the state cannot hold the function (out of memory).
func (st *State) Register(table, name string, fn Func) {
	id := len(st.funcs)
	st.funcs = append(st.funcs, goFunc{name: name, fn: fn})
	ct := C.CString(table)
	cn := C.CString(name)
	rc := C.mg_register_go(st.s, ct, cn, C.int(id))
	C.free(unsafe.Pointer(ct))
	C.free(unsafe.Pointer(cn))
	if rc != 0 {
		panic(fmt.Sprintf("luabind: registering %s.%s: %s", table, name, st.errText()))
	}
}

// RegisterRowFetch sets table.name to rows.c's fetch: LuaSQL's
// cur:fetch over a result that a binding handed to Lua whole (rows.c
// describes the cursor table), so that a row costs no call into Go.
func (st *State) RegisterRowFetch(table, name string) {
	ct := C.CString(table)
	cn := C.CString(name)
	rc := C.mg_register_rows(st.s, ct, cn)
	C.free(unsafe.Pointer(ct))
	C.free(unsafe.Pointer(cn))
	if rc != 0 {
		panic(fmt.Sprintf("luabind: registering %s.%s: %s", table, name, st.errText()))
	}
}

//export magnetCallGo
func magnetCallGo(h C.uintptr_t, L *C.lua_State, id C.int, nargs C.int, args *C.mg_arg, nread C.int, out *C.mg_buf) (ret C.int) {
	// A Call handed to a Func escapes, and Go functions on a hot path
	// (magnet.shared) should not allocate: each state keeps one, as no
	// Go function of a state runs inside another (a nested call comes
	// from C's pushes, after the outer Go function returned).
	var c *Call
	defer func() {
		if p := recover(); p != nil {
			if c == nil {
				c = &Call{}
			}
			c.st = nil // the handle may be what failed
			ret = finishCall(c, out, fmt.Errorf("%s: internal error: %v", c.name, p))
		}
		if c != nil {
			*c = Call{}
		}
	}()
	st := cgo.Handle(h).Value().(*State)
	f := st.funcs[id]
	c = &st.call
	*c = Call{st: st, L: L, name: f.name, nargs: int(nargs),
		args: (*[C.MG_ARGS]C.mg_arg)(unsafe.Pointer(args)), nread: int(nread)}
	st.res = st.res[:0]
	n, err := f.fn(c)
	if err != nil {
		return finishCall(c, out, err)
	}
	if finishCall(c, out, nil) != 0 {
		return C.MG_GOERROR
	}
	return C.int(n)
}

// finishCall copies the encoded results, or the error, into the C buffer
// out: 0, or MG_GOERROR.
func finishCall(c *Call, out *C.mg_buf, err error) C.int {
	var res []byte
	if c.st != nil {
		res = c.st.res
	}
	ret := C.int(0)
	if err != nil {
		res = appendStr(append(res, C.MG_OP_ERROR), err.Error())
		ret = C.MG_GOERROR
	}
	if c.st != nil {
		c.st.res = res[:0]
	}
	out.len = 0
	if len(res) == 0 {
		return ret
	}
	if len(res) <= int(out.cap) {
		// The buffer is large enough: no cgo call.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(out.p)), int(out.cap)), res)
		out.len = C.size_t(len(res))
		return ret
	}
	if C.mg_box_set(out, (*C.char)(unsafe.Pointer(&res[0])), C.size_t(len(res))) != 0 {
		return C.MG_GOERROR // out of C memory: C raises a generic error
	}
	return ret
}

func appendStr(b []byte, s string) []byte {
	b = binary.NativeEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func (c *Call) op(code byte) { c.st.res = append(c.st.res, code) }

func (c *Call) i32(v int) {
	c.st.res = binary.NativeEndian.AppendUint32(c.st.res, uint32(int32(v)))
}

// Top is the number of arguments.
func (c *Call) Top() int { return c.nargs }

// ArgError is the error for a bad argument, worded as Lua's own.
func (c *Call) ArgError(i int, msg string) error {
	return fmt.Errorf("bad argument #%d to '%s' (%s)", i, c.name, msg)
}

// arg reports whether i names an argument (the stack above them holds the
// trampoline's result box).
func (c *Call) arg(i int) bool { return i >= 1 && i <= c.nargs }

// CheckString returns argument i as a string (numbers are converted), or an
// argument error.
func (c *Call) CheckString(i int) (string, error) {
	if c.arg(i) {
		switch c.ArgType(i) {
		case TypeString:
			if i <= c.nread {
				return string(c.ArgBytes(i)), nil
			}
			var n C.size_t
			p := C.mg_tolstring(c.L, C.int(i), &n)
			return C.GoStringN(p, C.int(n)), nil
		case TypeNumber:
			var buf [64]byte
			k := C.mg_numstr(c.L, C.int(i), (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
			return string(buf[:k]), nil
		}
	}
	return "", c.ArgError(i, "string expected, got "+c.TypeName(i))
}

// OptString is argument i as a string, or def when it is absent or nil.
func (c *Call) OptString(i int, def string) (string, error) {
	if c.IsNoneOrNil(i) {
		return def, nil
	}
	return c.CheckString(i)
}

// CheckNumber returns argument i as a number, or an argument error.
func (c *Call) CheckNumber(i int) (float64, error) {
	if c.ArgType(i) != TypeNumber {
		if s, ok := c.stringArg(i); ok {
			var v float64
			if _, err := fmt.Sscan(s, &v); err == nil {
				return v, nil
			}
		}
		return 0, c.ArgError(i, "number expected, got "+c.TypeName(i))
	}
	return c.ArgNumber(i), nil
}

func (c *Call) stringArg(i int) (string, bool) {
	if c.ArgType(i) != TypeString {
		return "", false
	}
	s, err := c.CheckString(i)
	return s, err == nil
}

// Bool is argument i's truth value.
func (c *Call) Bool(i int) bool {
	if i >= 1 && i <= c.nread {
		a := &c.args[i-1]
		return a.kind > C.LUA_TBOOLEAN || a.kind == C.LUA_TBOOLEAN && a.num != 0
	}
	return c.arg(i) && C.mg_toboolean(c.L, C.int(i)) != 0
}

// IsNoneOrNil reports whether argument i is absent or nil.
func (c *Call) IsNoneOrNil(i int) bool { return c.ArgType(i) <= TypeNil }

// TypeName is the Lua type name of argument i ("no value" when absent).
func (c *Call) TypeName(i int) string {
	if !c.arg(i) {
		return "no value"
	}
	return C.GoString(C.mg_typename(c.L, C.int(i)))
}

// PushString gives a string result.
func (c *Call) PushString(s string) { c.st.res = appendStr(append(c.st.res, C.MG_OP_STR), s) }

// PushNil gives nil.
func (c *Call) PushNil() { c.op(C.MG_OP_NIL) }

// PushBool gives a boolean.
func (c *Call) PushBool(b bool) {
	v := byte(0)
	if b {
		v = 1
	}
	c.st.res = append(c.st.res, C.MG_OP_BOOL, v)
}

// PushNumber gives a number.
func (c *Call) PushNumber(v float64) {
	c.st.res = binary.NativeEndian.AppendUint64(append(c.st.res, C.MG_OP_NUM), math.Float64bits(v))
}

// NewTable gives an empty table sized for narr array and nrec hash items.
func (c *Call) NewTable(narr, nrec int) {
	c.op(C.MG_OP_TABLE)
	c.i32(narr)
	c.i32(nrec)
}

// SetField takes the last value given and stores it as t[key], t being a
// stack index as if the results had been pushed (-2: the value below it).
func (c *Call) SetField(t int, key string) {
	c.op(C.MG_OP_FIELD)
	c.i32(t)
	c.st.res = appendStr(c.st.res, key)
}

// SetIndex takes the last value given and stores it as t[i], t being a
// stack index as for SetField.
func (c *Call) SetIndex(t, i int) {
	c.op(C.MG_OP_INDEX)
	c.i32(t)
	c.i32(i)
}

// Fail is the usual Lua result for a failed operation: nil and a message.
func (c *Call) Fail(err error) (int, error) {
	c.PushNil()
	c.PushString(err.Error())
	return 2, nil
}
