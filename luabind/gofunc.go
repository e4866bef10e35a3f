package luabind

/*
#include <stdlib.h>
#include "magnet.h"

static const char *mg_tolstring(lua_State *L, int i, size_t *n) { return lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER ? lua_tolstring(L, i, n) : NULL; }
static void mg_pushlstring(lua_State *L, const char *s, size_t n) { lua_pushlstring(L, s, n); }
static void mg_pushnil(lua_State *L) { lua_pushnil(L); }
static void mg_pushboolean(lua_State *L, int b) { lua_pushboolean(L, b); }
static void mg_pushnumber(lua_State *L, double v) { lua_pushnumber(L, v); }
static void mg_newtable(lua_State *L, int narr, int nrec) { lua_createtable(L, narr, nrec); }
static void mg_rawsetfield(lua_State *L, int t, const char *k, size_t n) { lua_pushlstring(L, k, n); lua_insert(L, -2); lua_rawset(L, t < 0 ? t - 1 : t); }
static void mg_rawseti(lua_State *L, int t, int i) { lua_rawseti(L, t, i); }
static int mg_gettop(lua_State *L) { return lua_gettop(L); }
static int mg_type(lua_State *L, int i) { return lua_type(L, i); }
static double mg_tonumber(lua_State *L, int i) { return lua_tonumber(L, i); }
static int mg_toboolean(lua_State *L, int i) { return lua_toboolean(L, i); }
static const char *mg_typename(lua_State *L, int i) { return lua_typename(L, lua_type(L, i)); }
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// Func is a Lua function implemented in Go. It reads its arguments and
// pushes its results through c and returns how many it pushed. A returned
// error becomes a Lua error that the script can catch with pcall.
type Func func(c *Call) (int, error)

type goFunc struct {
	name string
	fn   Func
}

// Call is the argument and result stack of one Go function call. Its
// methods use only Lua API calls that cannot raise a Lua error.
type Call struct {
	st   *State
	L    *C.lua_State
	name string
}

// Register makes fn callable from Lua as table.name ("" for a global),
// creating the table path (for example "magnet.fs") when it is missing.
func (st *State) Register(table, name string, fn Func) {
	id := len(st.funcs)
	st.funcs = append(st.funcs, goFunc{name: name, fn: fn})
	ct := C.CString(table)
	cn := C.CString(name)
	C.mg_register_go(st.s, ct, cn, C.int(id))
	C.free(unsafe.Pointer(ct))
	C.free(unsafe.Pointer(cn))
}

//export magnetCallGo
func magnetCallGo(h C.uintptr_t, L *C.lua_State, id C.int) (ret C.int) {
	st := cgo.Handle(h).Value().(*State)
	f := st.funcs[id]
	c := &Call{st: st, L: L, name: f.name}
	defer func() {
		if p := recover(); p != nil {
			c.pushError(fmt.Errorf("%s: internal error: %v", f.name, p))
			ret = C.MG_GOERROR
		}
	}()
	n, err := f.fn(c)
	if err != nil {
		c.pushError(err)
		return C.MG_GOERROR
	}
	return C.int(n)
}

func (c *Call) pushError(err error) {
	msg := err.Error()
	if len(msg) > 0 {
		C.mg_pushlstring(c.L, (*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
	} else {
		C.mg_pushlstring(c.L, nil, 0)
	}
}

// Top is the number of arguments.
func (c *Call) Top() int { return int(C.mg_gettop(c.L)) }

// ArgError is the error for a bad argument, worded as Lua's own.
func (c *Call) ArgError(i int, msg string) error {
	return fmt.Errorf("bad argument #%d to '%s' (%s)", i, c.name, msg)
}

// CheckString returns argument i as a string (numbers are converted), or an
// argument error.
func (c *Call) CheckString(i int) (string, error) {
	var n C.size_t
	p := C.mg_tolstring(c.L, C.int(i), &n)
	if p == nil {
		return "", c.ArgError(i, "string expected, got "+c.TypeName(i))
	}
	return C.GoStringN(p, C.int(n)), nil
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
	if t := C.mg_type(c.L, C.int(i)); t != C.LUA_TNUMBER {
		if s, ok := c.stringArg(i); ok {
			var v float64
			if _, err := fmt.Sscan(s, &v); err == nil {
				return v, nil
			}
		}
		return 0, c.ArgError(i, "number expected, got "+c.TypeName(i))
	}
	return float64(C.mg_tonumber(c.L, C.int(i))), nil
}

func (c *Call) stringArg(i int) (string, bool) {
	if C.mg_type(c.L, C.int(i)) != C.LUA_TSTRING {
		return "", false
	}
	s, err := c.CheckString(i)
	return s, err == nil
}

// Bool is argument i's truth value.
func (c *Call) Bool(i int) bool { return C.mg_toboolean(c.L, C.int(i)) != 0 }

// IsNoneOrNil reports whether argument i is absent or nil.
func (c *Call) IsNoneOrNil(i int) bool { return C.mg_type(c.L, C.int(i)) <= C.LUA_TNIL }

// TypeName is the Lua type name of argument i ("no value" when absent).
func (c *Call) TypeName(i int) string {
	if C.mg_type(c.L, C.int(i)) == C.LUA_TNONE {
		return "no value"
	}
	return C.GoString(C.mg_typename(c.L, C.int(i)))
}

// PushString pushes a string.
func (c *Call) PushString(s string) {
	C.mg_pushlstring(c.L, (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s)))
}

// PushNil pushes nil.
func (c *Call) PushNil() { C.mg_pushnil(c.L) }

// PushBool pushes a boolean.
func (c *Call) PushBool(b bool) {
	v := 0
	if b {
		v = 1
	}
	C.mg_pushboolean(c.L, C.int(v))
}

// PushNumber pushes a number.
func (c *Call) PushNumber(v float64) { C.mg_pushnumber(c.L, C.double(v)) }

// NewTable pushes an empty table sized for narr array and nrec hash items.
func (c *Call) NewTable(narr, nrec int) { C.mg_newtable(c.L, C.int(narr), C.int(nrec)) }

// SetField pops a value and stores it as t[key], t being at index t.
func (c *Call) SetField(t int, key string) {
	C.mg_rawsetfield(c.L, C.int(t), (*C.char)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key)))
}

// SetIndex pops a value and stores it as t[i], t being at index t.
func (c *Call) SetIndex(t, i int) { C.mg_rawseti(c.L, C.int(t), C.int(i)) }

// Fail is the usual Lua result for a failed operation: nil and a message.
func (c *Call) Fail(err error) (int, error) {
	c.PushNil()
	c.PushString(err.Error())
	return 2, nil
}
