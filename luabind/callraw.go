package luabind

/*
#include "magnet.h"

// Reading arguments without raising or allocating (doc.go, rule 3).
static int mg_raw_type(lua_State *L, int i) { return lua_type(L, i); }
static double mg_raw_number(lua_State *L, int i) { return lua_tonumber(L, i); }
typedef struct mg_raw_str { const char *p; size_t n; } mg_raw_str;
static mg_raw_str mg_raw_string(lua_State *L, int i) {
	mg_raw_str s = {NULL, 0};
	if (lua_type(L, i) == LUA_TSTRING) s.p = lua_tolstring(L, i, &s.n);
	return s;
}
*/
import "C"

import (
	"encoding/binary"
	"unsafe"
)

// The Lua types ArgType reports.
const (
	TypeNone    = C.LUA_TNONE
	TypeNil     = C.LUA_TNIL
	TypeBoolean = C.LUA_TBOOLEAN
	TypeNumber  = C.LUA_TNUMBER
	TypeString  = C.LUA_TSTRING
	TypeTable   = C.LUA_TTABLE
)

// ArgType is the Lua type of argument i (TypeNone when absent), without
// the allocation of TypeName: for functions on a hot path.
func (c *Call) ArgType(i int) int {
	if uint(i-1) < uint(c.nread) {
		return int(c.args[i-1].kind)
	}
	return c.argTypeSlow(i)
}

// The slow paths read an argument past those the trampoline read.

func (c *Call) argTypeSlow(i int) int {
	if !c.arg(i) {
		return TypeNone
	}
	return int(C.mg_raw_type(c.L, C.int(i)))
}

// ArgBytes is string argument i as a view of Lua's own bytes, or nil when
// it is not a string. The view is valid only until the function returns
// and must not be written to; it spares the copy of CheckString.
func (c *Call) ArgBytes(i int) []byte {
	if uint(i-1) < uint(c.nread) {
		a := &c.args[i-1]
		if a.s == nil {
			return nil
		}
		return unsafe.Slice((*byte)(unsafe.Pointer(a.s)), int(a.n))
	}
	return c.argBytesSlow(i)
}

func (c *Call) argBytesSlow(i int) []byte {
	if !c.arg(i) {
		return nil
	}
	s := C.mg_raw_string(c.L, C.int(i))
	if s.p == nil {
		return nil
	}
	if s.n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(s.p)), int(s.n))
}

// ArgNumber is number argument i (0 when it is not a number).
func (c *Call) ArgNumber(i int) float64 {
	if uint(i-1) < uint(c.nread) {
		if c.args[i-1].kind != C.LUA_TNUMBER {
			return 0
		}
		return float64(c.args[i-1].num)
	}
	return c.argNumberSlow(i)
}

func (c *Call) argNumberSlow(i int) float64 {
	if !c.arg(i) {
		return 0
	}
	return float64(C.mg_raw_number(c.L, C.int(i)))
}

// PushBytes gives a string result copied from b.
func (c *Call) PushBytes(b []byte) {
	c.st.res = binary.NativeEndian.AppendUint64(append(c.st.res, C.MG_OP_STR), uint64(len(b)))
	c.st.res = append(c.st.res, b...)
}
