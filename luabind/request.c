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

/* The fields of magnet.request that are CGI params, made on first use. */
static const struct {
	const char *field, *param;
} request_fields[] = {
	{"method", "REQUEST_METHOD"},
	{"uri", "REQUEST_URI"},
	{"query", "QUERY_STRING"},
	{"script", "SCRIPT_FILENAME"},
	{"path", "SCRIPT_NAME"},
	{"path_info", "PATH_INFO"},
	{"remote_addr", "REMOTE_ADDR"},
	{"content_type", "CONTENT_TYPE"},
};

/* new_request builds magnet.request for the current request: an empty
 * table whose fields mg_request_index makes when a script first reads
 * them, so that a page reading one query argument does not pay for
 * interning every param. */
static void new_request(lua_State *L, mg_state *S) {
	lua_createtable(L, 0, 4);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->request_mt_ref);
	lua_setmetatable(L, -2);
}

/* mg_request_index is magnet.request's __index: the params and the
 * fields named after them come from the request; the rest (get, post,
 * files, cookies, headers) from the prelude's Lua function. What is made
 * is stored in the table, so the next read is a plain lookup. */
int mg_request_index(lua_State *L) {
	mg_state *S = UPSTATE(L);
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
	if (k == NULL) return 0;
	for (size_t i = 0; i < sizeof request_fields / sizeof request_fields[0]; i++) {
		if (strcmp(k, request_fields[i].field) == 0) {
			if (!push_param(L, S, request_fields[i].param)) return 1;
			goto keep;
		}
	}
	if (strcmp(k, "params") == 0) {
		lua_createtable(L, 0, S->req.nparams);
		const uint32_t *ix = S->req.index;
		for (int i = 0; i < S->req.nparams; i++, ix += 4) {
			lua_pushlstring(L, S->req.params + ix[0], ix[1]);
			lua_pushlstring(L, S->req.params + ix[2], ix[3]);
			lua_rawset(L, -3);
		}
		goto keep;
	}
	if (strcmp(k, "content_length") == 0) {
		if (!push_param(L, S, "CONTENT_LENGTH")) return 1;
		lua_Number n = lua_tonumber(L, -1);
		lua_pop(L, 1);
		lua_pushnumber(L, n);
		goto keep;
	}
	if (strcmp(k, "body") == 0) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->body_fn_ref);
		goto keep;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "magnet.request_lazy");
	if (!lua_isfunction(L, -1)) return 0;
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_call(L, 2, 1);
	return 1;
keep:
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

/* ---- query strings ---- */

static int hexdigit(unsigned char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* mg_push_unescaped pushes s[0:n] with %XX decoded, and + as a space if
 * plus is set (a form); a % not followed by two hex digits stays as it
 * is. For magnet.urldecode, parse_query and unescape_uri (respond.c). */
void mg_push_unescaped(lua_State *L, const char *s, size_t n, int plus) {
	if ((!plus || memchr(s, '+', n) == NULL) && memchr(s, '%', n) == NULL) {
		lua_pushlstring(L, s, n);
		return;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (plus && s[i] == '+') {
			luaL_addchar(&b, ' ');
		} else if (s[i] == '%' && i + 2 < n && (hi = hexdigit((unsigned char)s[i + 1])) >= 0 &&
			   (lo = hexdigit((unsigned char)s[i + 2])) >= 0) {
			luaL_addchar(&b, (char)(hi << 4 | lo));
			i += 2;
		} else {
			luaL_addchar(&b, s[i]);
		}
	}
	luaL_pushresult(&b);
}

/* magnet.urldecode(s): a form-encoded string decoded. */
int mg_urldecode(lua_State *L) {
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	mg_push_unescaped(L, s, n, 1);
	return 1;
}

/* add_pair sets t[k] = v for the key and value on top of the stack, or
 * appends v to the values of a repeated key: {first, second, ...}. */
static void add_pair(lua_State *L, int t) {
	lua_pushvalue(L, -2);
	lua_rawget(L, t); /* k v old */
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_rawset(L, t);
	} else if (lua_istable(L, -1)) {
		lua_insert(L, -2); /* k old v */
		lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
		lua_pop(L, 2);
	} else {
		lua_createtable(L, 2, 0); /* k v old new */
		lua_insert(L, -2);
		lua_rawseti(L, -2, 1); /* k v new */
		lua_insert(L, -2);
		lua_rawseti(L, -2, 2); /* k new */
		lua_rawset(L, t);
	}
}

/* magnet.parse_query(q): the pairs of a query string or form body,
 * decoded, in a table; a repeated key holds a list of its values. Pairs
 * are separated by & or ;, and a pair without = has the value "". */
int mg_parse_query(lua_State *L) {
	size_t n = 0;
	const char *q = lua_isnoneornil(L, 1) ? NULL : luaL_checklstring(L, 1, &n);
	lua_newtable(L);
	int t = lua_gettop(L);
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && q[j] != '&' && q[j] != ';') j++;
		if (j > i) {
			const char *eq = memchr(q + i, '=', j - i);
			size_t klen = eq ? (size_t)(eq - (q + i)) : j - i;
			mg_push_unescaped(L, q + i, klen, 1);
			if (eq) mg_push_unescaped(L, eq + 1, (size_t)(q + j - eq - 1), 1);
			else lua_pushliteral(L, "");
			add_pair(L, t);
		}
		i = j + 1;
	}
	return 1;
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
