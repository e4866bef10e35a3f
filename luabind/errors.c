/* errors.c: the message handler of a script run, and the error text
 * that Go reads from S->err. Safety rules: doc.go. */
#include <stdio.h>
#include "internal.h"

/* mg_msghandler is the message handler of a script run: it turns an error
 * object that is not a string into one (its __tostring, or its type) and
 * adds the traceback, as debug.traceback does for strings. */
int mg_msghandler(lua_State *L) {
	mg_state *S = UPSTATE(L);
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
