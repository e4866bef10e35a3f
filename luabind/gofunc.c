/* gofunc.c: Lua functions implemented in Go (gofunc.go), called through
 * one C trampoline. Safety rules: doc.go. */
#include "internal.h"
#include "_cgo_export.h"

/* mg_gofunc calls a Go function; the Go side never raises, it returns
 * MG_GOERROR with the error value on the stack and C raises it here,
 * after every Go frame has returned. */
static int mg_gofunc(lua_State *L) {
	mg_state *S = UPSTATE(L);
	int id = (int)lua_tointeger(L, lua_upvalueindex(2));
	int n = magnetCallGo(S->handle, L, id);
	if (n == MG_GOERROR) return lua_error(L);
	return n;
}

/* find_table leaves the (possibly new) global table at path on the stack. */
static void find_table(lua_State *L, const char *path) {
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	while (*path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		lua_pushlstring(L, path, n);
		lua_rawget(L, -2);
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushlstring(L, path, n);
			lua_pushvalue(L, -2);
			lua_rawset(L, -4);
		}
		lua_remove(L, -2);
		path += n;
		if (*path == '.') path++;
	}
}

/* mg_register_go sets table.name (table a dotted global path, made when
 * missing) to a trampoline to Go function id. */
void mg_register_go(mg_state *S, const char *table, const char *name, int id) {
	lua_State *L = S->L;
	find_table(L, table);
	lua_pushstring(L, name);
	lua_pushlightuserdata(L, S);
	lua_pushinteger(L, id);
	lua_pushcclosure(L, mg_gofunc, 2);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}
