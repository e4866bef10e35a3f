/* headers.c: the CGI header block of a structured response, built from
 * magnet.status and magnet.header after the run. Safety rules: doc.go. */
#include <ctype.h>
#include <stdio.h>
#include <strings.h>
#include "internal.h"
#include "respond.h"

/* header_name_ok: an HTTP token (RFC 9110). */
static int header_name_ok(const char *s, size_t n) {
	if (n == 0) return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))) return 0;
	}
	return 1;
}

/* header_value_ok: no control characters but tab. */
static int header_value_ok(const char *s, size_t n) {
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
	}
	return 1;
}

static void header_line(lua_State *L, mg_state *S, const char *k, size_t kn, int vi) {
	size_t vn;
	const char *v = lua_tolstring(L, vi, &vn);
	if (v == NULL) luaL_error(L, "magnet.header[%s]: value must be a string or number", k);
	if (!header_name_ok(k, kn) || !header_value_ok(v, vn))
		luaL_error(L, "magnet.header: invalid header %s", k);
	if (mg_buf_append(&S->hdr, k, kn) || mg_buf_append(&S->hdr, ": ", 2) || mg_buf_append(&S->hdr, v, vn) ||
	    mg_buf_append(&S->hdr, "\r\n", 2))
		luaL_error(L, "magnet: out of memory");
}

/* mg_build_header runs under lua_pcall (from mg_run): header
 * values are script data. */
int mg_build_header(lua_State *L) {
	mg_state *S = lua_touserdata(L, 1);
	if (S->sent) return 0; /* a flush sent it already */
	char line[64];
	int status = S->status ? S->status : 200;
	const char *reason = mg_reason(status);
	int n = snprintf(line, sizeof line, "Status: %d%s%s\r\n", status, *reason ? " " : "", reason);
	/* 204 and 304 carry no body (RFC 9110), so no Content-Type either */
	int nobody = status == 204 || status == 304;
	if (nobody) S->out.len = 0;
	S->hdr.len = 0;
	mg_buf_append(&S->hdr, line, (size_t)n);
	int has_ct = 0;
	if (S->header_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->header_ref);
		int t = lua_gettop(L);
		lua_pushnil(L);
		while (lua_next(L, t)) {
			if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "magnet.header: names must be strings");
			size_t kn;
			const char *k = lua_tolstring(L, -2, &kn);
			if (kn == 6 && strncasecmp(k, "status", 6) == 0) luaL_error(L, "magnet.header: use magnet.status for the status");
			if (kn == 12 && strncasecmp(k, "content-type", 12) == 0) has_ct = 1;
			if (lua_istable(L, -1)) {
				int vt = lua_gettop(L);
				for (int i = 1;; i++) {
					lua_rawgeti(L, vt, i);
					if (lua_isnil(L, -1)) {
						lua_pop(L, 1);
						break;
					}
					header_line(L, S, k, kn, -1);
					lua_pop(L, 1);
				}
			} else {
				header_line(L, S, k, kn, -1);
			}
			lua_pop(L, 1);
		}
	}
	if (!has_ct && !nobody) mg_buf_append(&S->hdr, "Content-Type: text/html\r\n", 25);
	mg_buf_append(&S->hdr, "\r\n", 2);
	return 0;
}
