/* errors.c: the message handler of a script run, the error text that Go
 * reads from S->err, and finalizers that cannot raise. Safety rules:
 * doc.go. */
#include <stdio.h>
#include "internal.h"
#include "respond.h"

/* mg_msghandler is the message handler of a script run: it turns an error
 * object that is not a string into one (its __tostring, or its type) and
 * adds the traceback, as debug.traceback does for strings. */
int mg_msghandler(lua_State *L) {
	mg_state *S = UPSTATE(L);
	if (lua_touserdata(L, 1) == &mg_exit_key) return 1; /* magnet.exit: not an error */
	if (!lua_isstring(L, 1)) {
		int done = 0;
		if (luaL_getmetafield(L, 1, "__tostring")) {
			lua_pop(L, 1);
			lua_rawgeti(L, LUA_REGISTRYINDEX, S->tostring_ref);
			lua_pushvalue(L, 1);
			if (lua_pcall(L, 1, 1, 0) == 0 && lua_type(L, -1) == LUA_TSTRING) done = 1;
			else lua_pop(L, 1);
		}
		if (!done) lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
		lua_replace(L, 1);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->traceback_ref);
	lua_pushvalue(L, 1);
	lua_pushinteger(L, 2); /* level 1 is this handler */
	lua_call(L, 2, 1);
	return 1;
}

/* mg_capture_error copies the error value on top of the stack to S->err.
 * It allocates nothing in Lua (lua_tolstring would turn a number into a
 * string in place), so it is safe outside a protected call. */
void mg_capture_error(lua_State *L, mg_state *S) {
	size_t n;
	int t = lua_type(L, -1);
	if (t == LUA_TSTRING) {
		const char *msg = lua_tolstring(L, -1, &n);
		mg_buf_set(&S->err, msg, n);
	} else if (t == LUA_TNUMBER) {
		char num[64];
		int k = snprintf(num, sizeof num, "%.14g", (double)lua_tonumber(L, -1));
		mg_buf_set(&S->err, num, k > 0 ? (size_t)k : 0);
	} else if (t == LUA_TTABLE) {
		/* error({...}) escaped a protected call without msghandler */
		mg_buf_set(&S->err, "uncaught error object (table)", 29);
	} else {
		const char *tn = lua_typename(L, t);
		mg_buf_set(&S->err, "uncaught error object (", 23);
		mg_buf_append(&S->err, tn, strlen(tn));
		mg_buf_append(&S->err, ")", 1);
	}
}

/* ---- __gc finalizers ----
 * A finalizer runs when some allocation triggers a collection step, which
 * may be in a later request; a finalizer that raised would fail that
 * request. newproxy (the only way a script makes a userdata with a
 * metatable) is replaced by mg_newproxy: the metatable of newproxy(true)
 * has a guard metatable whose __newindex wraps a function stored as __gc
 * in mg_gc_call, which runs it under lua_pcall and counts its error. */

/* mg_gc_call is a wrapped finalizer: upvalue 1 the mg_state, 2 the
 * script's function. Its error is counted and kept for the log, never
 * raised. */
static int mg_gc_call(lua_State *L) {
	mg_state *S = UPSTATE(L);
	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_insert(L, 1);
	if (lua_pcall(L, 1, 0, 0) != 0) {
		if (S->gc_errors++ == 0) {
			size_t n = 0;
			const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "(not a string)";
			if (n == 0) n = strlen(msg);
			if (n >= sizeof S->gc_error) n = sizeof S->gc_error - 1;
			memcpy(S->gc_error, msg, n);
			S->gc_error[n] = 0;
		}
		lua_pop(L, 1);
	}
	return 0;
}

/* gc_guard is the __newindex of a proxy's metatable (upvalue 1 the
 * mg_state): __gc set to a function is stored wrapped. */
static int gc_guard(lua_State *L) {
	lua_settop(L, 3);
	if (lua_type(L, 2) == LUA_TSTRING && lua_type(L, 3) == LUA_TFUNCTION && strcmp(lua_tostring(L, 2), "__gc") == 0) {
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_insert(L, 3);
		lua_pushcclosure(L, mg_gc_call, 2);
	}
	lua_rawset(L, 1);
	return 0;
}

/* mg_newproxy is newproxy (upvalue 1 the original, 2 the guard
 * metatable): newproxy(true) gets a guarded metatable. */
static int mg_newproxy(lua_State *L) {
	int fresh = lua_type(L, 1) == LUA_TBOOLEAN && lua_toboolean(L, 1);
	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 1, 1);
	if (fresh && lua_getmetatable(L, -1)) {
		lua_pushvalue(L, lua_upvalueindex(2));
		lua_setmetatable(L, -2);
		lua_pop(L, 1);
	}
	return 1;
}

/* mg_guard_finalizers replaces newproxy (during set-up). */
void mg_guard_finalizers(lua_State *L, mg_state *S) {
	lua_getglobal(L, "newproxy");
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_createtable(L, 0, 2);
	lua_pushlightuserdata(L, S);
	lua_pushcclosure(L, gc_guard, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushcclosure(L, mg_newproxy, 2);
	lua_setglobal(L, "newproxy");
}
