/* rows.c: the row fetch of a result that a binding handed to Lua whole
 * (sqlbind's small results), so that a row costs no call into Go: LuaSQL's
 * cur:fetch([t [, mode]]). Safety rules: doc.go (a Lua function in C that
 * raises only under the script's protected call, and never calls Go).
 *
 * The cursor is a table whose array part holds the result:
 *   [1] the values, flat, row after row (nil for NULL); nil once closed
 *   [2] the column names, [3] the number of columns,
 *   [4] how many values were fetched so far, [5] how many there are,
 *   [6] the value a NULL takes in a numbered row (luasql.null). */
#include "internal.h"

enum { VALS = 1, NAMES, NCOLS, POS, NVALS, NUL };
enum { MAX_COLS = 1 << 16 };

static int intfield(lua_State *L, int t, int i) {
	lua_rawgeti(L, t, i);
	int v = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return v;
}

/* mg_rows_fetch returns the next row's values, or fills t with them: by
 * column number if mode (default "n") holds "n", by column name if it holds
 * "a", with raw sets. After the last row it returns nil and the cursor is
 * closed; a fetch from a closed cursor is an error. */
int mg_rows_fetch(lua_State *L) {
	int ncols = lua_istable(L, 1) ? intfield(L, 1, NCOLS) : 0;
	/* no database gives more columns; a script that wrote a larger number
	 * into the table does not get a loop that long */
	if (ncols <= 0 || ncols > MAX_COLS)
		return luaL_error(L, "bad argument #1 (LuaSQL: cursor expected, got %s)", luaL_typename(L, 1));
	int into = !lua_isnoneornil(L, 2);
	const char *mode = "n";
	if (into) {
		luaL_checktype(L, 2, LUA_TTABLE);
		if (!lua_isnoneornil(L, 3)) {
			if (lua_type(L, 3) != LUA_TSTRING) luaL_typerror(L, 3, "string");
			mode = lua_tostring(L, 3);
		}
	}
	lua_settop(L, 3);
	lua_rawgeti(L, 1, VALS);
	if (!lua_istable(L, 4)) return luaL_error(L, "LuaSQL: cursor is closed");
	int pos = intfield(L, 1, POS), nvals = intfield(L, 1, NVALS);
	if (pos >= nvals) {
		lua_pushnil(L);
		lua_rawseti(L, 1, VALS);
		lua_pushnil(L);
		return 1;
	}
	lua_pushinteger(L, pos + ncols);
	lua_rawseti(L, 1, POS);
	if (!into) {
		luaL_checkstack(L, ncols, "too many columns");
		for (int i = 1; i <= ncols; i++) lua_rawgeti(L, 4, pos + i);
		return ncols;
	}
	if (strchr(mode, 'n')) {
		for (int i = 1; i <= ncols; i++) {
			lua_rawgeti(L, 4, pos + i);
			if (lua_isnil(L, -1)) {
				lua_pop(L, 1);
				lua_rawgeti(L, 1, NUL);
			}
			lua_rawseti(L, 2, i);
		}
	}
	if (strchr(mode, 'a')) {
		lua_rawgeti(L, 1, NAMES);
		for (int i = 1; i <= ncols; i++) {
			lua_rawgeti(L, 5, i);
			lua_rawgeti(L, 4, pos + i);
			lua_rawset(L, 2);
		}
	}
	lua_settop(L, 2);
	return 1;
}
