/* output.c: print, io.write and io.stdout, appending to the response in
 * S->out. Safety rules: doc.go. */
#include "internal.h"

/* append_output adds one print/io.write argument to the response. */
static void append_output(lua_State *L, mg_state *S, const char *s, size_t n) {
	if (mg_buf_append(&S->out, s, n) != 0) {
		lua_pushliteral(L, "magnet: out of memory for the response");
		lua_error(L);
	}
}

/* print: lua-magnet's print, no separator and no newline. */
int mg_print(lua_State *L) {
	mg_state *S = UPSTATE(L);
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		size_t len;
		const char *s;
		int t = lua_type(L, i);
		if (t == LUA_TSTRING || t == LUA_TNUMBER) {
			s = lua_tolstring(L, i, &len);
		} else {
			lua_rawgeti(L, LUA_REGISTRYINDEX, S->tostring_ref);
			lua_pushvalue(L, i);
			lua_call(L, 1, 1);
			s = lua_tolstring(L, -1, &len);
			if (s == NULL) return luaL_error(L, LUA_QL("tostring") " must return a string to " LUA_QL("print"));
			append_output(L, S, s, len);
			lua_pop(L, 1);
			continue;
		}
		append_output(L, S, s, len);
	}
	return 0;
}

/* write_args appends arguments from index first on, as io.write does. */
static void write_args(lua_State *L, mg_state *S, int first) {
	int n = lua_gettop(L);
	for (int i = first; i <= n; i++) {
		size_t len;
		const char *s = luaL_checklstring(L, i, &len);
		append_output(L, S, s, len);
	}
}

/* io.write(...) appends to the response and returns io.stdout. */
int mg_io_write(lua_State *L) {
	mg_state *S = UPSTATE(L);
	write_args(L, S, 1);
	lua_pushvalue(L, lua_upvalueindex(2)); /* io.stdout */
	return 1;
}

/* stdout:write(...) — method form, self is argument 1. */
int mg_stdout_write(lua_State *L) {
	mg_state *S = UPSTATE(L);
	write_args(L, S, 2);
	lua_pushvalue(L, 1);
	return 1;
}

/* io.stdout:flush and :setvbuf do nothing: the worker writes the response. */
int mg_noop_self(lua_State *L) {
	lua_pushvalue(L, 1);
	return 1;
}
