/* request.c: what a script sees of its request: the CGI params,
 * os.getenv, magnet.request, and the magnet table's per-request fields
 * (status, header, request). Safety rules: doc.go. */
#include "internal.h"

/* find_param returns the index of the param called name, or -1. */
static int find_param(mg_state *S, const char *name, size_t len) {
	const uint32_t *ix = S->req.index;
	for (int i = 0; i < S->req.nparams; i++, ix += 4) {
		if (ix[1] == len && memcmp(S->req.params + ix[0], name, len) == 0) return i;
	}
	return -1;
}

static int push_param(lua_State *L, mg_state *S, const char *name) {
	int i = find_param(S, name, strlen(name));
	if (i < 0) {
		lua_pushnil(L);
		return 0;
	}
	const uint32_t *ix = S->req.index + 4 * i;
	lua_pushlstring(L, S->req.params + ix[2], ix[3]);
	return 1;
}

/* os.getenv: the request's param first, then the process environment. */
int mg_getenv(lua_State *L) {
	mg_state *S = UPSTATE(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	int i = S->req.index ? find_param(S, name, len) : -1;
	if (i >= 0) {
		const uint32_t *ix = S->req.index + 4 * i;
		lua_pushlstring(L, S->req.params + ix[2], ix[3]);
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

static void set_param_field(lua_State *L, mg_state *S, const char *field, const char *param) {
	push_param(L, S, param);
	lua_setfield(L, -2, field);
}

/* new_request builds magnet.request for the current request. */
static void new_request(lua_State *L, mg_state *S) {
	lua_createtable(L, 0, 12);
	lua_createtable(L, 0, S->req.nparams);
	const uint32_t *ix = S->req.index;
	for (int i = 0; i < S->req.nparams; i++, ix += 4) {
		lua_pushlstring(L, S->req.params + ix[0], ix[1]);
		lua_pushlstring(L, S->req.params + ix[2], ix[3]);
		lua_rawset(L, -3);
	}
	lua_setfield(L, -2, "params");
	set_param_field(L, S, "method", "REQUEST_METHOD");
	set_param_field(L, S, "uri", "REQUEST_URI");
	set_param_field(L, S, "query", "QUERY_STRING");
	set_param_field(L, S, "script", "SCRIPT_FILENAME");
	set_param_field(L, S, "path", "SCRIPT_NAME");
	set_param_field(L, S, "path_info", "PATH_INFO");
	set_param_field(L, S, "remote_addr", "REMOTE_ADDR");
	set_param_field(L, S, "content_type", "CONTENT_TYPE");
	if (push_param(L, S, "CONTENT_LENGTH")) {
		lua_Number n = lua_tonumber(L, -1);
		lua_pop(L, 1);
		lua_pushnumber(L, n);
	}
	lua_setfield(L, -2, "content_length");
	lua_pushlightuserdata(L, S);
	lua_pushcclosure(L, mg_request_body, 1);
	lua_setfield(L, -2, "body");
	lua_getfield(L, LUA_REGISTRYINDEX, "magnet.request_mt");
	if (lua_istable(L, -1)) lua_setmetatable(L, -2);
	else lua_pop(L, 1);
}

/* ---- the magnet table: status, header and request are per request ---- */

/* mg_magnet_index is the magnet table's __index: magnet.status,
 * magnet.cache, and magnet.header and magnet.request made on first use. */
int mg_magnet_index(lua_State *L) {
	mg_state *S = UPSTATE(L);
	const char *k = lua_tostring(L, 2);
	if (k == NULL || lua_type(L, 2) != LUA_TSTRING) return 0;
	if (strcmp(k, "status") == 0) {
		if (S->status) lua_pushinteger(L, S->status);
		else lua_pushnil(L);
		return 1;
	}
	if (strcmp(k, "header") == 0) {
		if (S->header_ref == LUA_NOREF) {
			lua_newtable(L);
			S->header_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		}
		S->structured = 1;
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->header_ref);
		return 1;
	}
	if (strcmp(k, "cache") == 0) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->cache_ref);
		return 1;
	}
	if (strcmp(k, "request") == 0) {
		if (S->request_ref == LUA_NOREF) {
			new_request(L, S);
			S->request_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->request_ref);
		return 1;
	}
	return 0;
}

/* mg_magnet_newindex is the magnet table's __newindex: it checks
 * magnet.status and magnet.header and keeps magnet.request and
 * magnet.cache read-only. */
int mg_magnet_newindex(lua_State *L) {
	mg_state *S = UPSTATE(L);
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
	if (k && S->sent && (strcmp(k, "status") == 0 || strcmp(k, "header") == 0))
		return luaL_error(L, "magnet: headers already sent");
	if (k && strcmp(k, "status") == 0) {
		if (lua_isnil(L, 3)) {
			S->status = 0;
			return 0;
		}
		lua_Number st = luaL_checknumber(L, 3);
		if (!(st >= 100 && st < 1000)) return luaL_error(L, "magnet.status: %f is not an HTTP status", st);
		S->status = (int)st;
		S->structured = 1;
		return 0;
	}
	if (k && strcmp(k, "header") == 0) {
		luaL_checktype(L, 3, LUA_TTABLE);
		if (S->header_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, S->header_ref);
		lua_pushvalue(L, 3);
		S->header_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		S->structured = 1;
		return 0;
	}
	if (k && strcmp(k, "request") == 0) return luaL_error(L, "magnet.request is read-only");
	if (k && strcmp(k, "cache") == 0) return luaL_error(L, "magnet.cache is read-only");
	lua_rawset(L, 1);
	return 0;
}
