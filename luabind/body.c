/* body.c: the request body, read from Go (magnetReadBody) only when a
 * script asks: io.read, io.lines, io.stdin and magnet.request.body().
 * A body over the worker's limit (--max-body) is an error: io.read returns
 * nil and the message, io.lines and magnet.request.body() raise it.
 * Safety rules: doc.go. */
#include <ctype.h>
#include "internal.h"
#include "_cgo_export.h"

static const char body_too_large[] = "magnet: request body too large";

/* body_fill reads more of the request body into S->in; returns bytes
 * read, 0 at EOF, -1 once the body went over its limit (S->body_over). */
static int body_fill(lua_State *L, mg_state *S) {
	if (S->body_over) return -1;
	if (S->body_eof) return 0;
	if (S->in_off > 0) {
		/* keep only the unread part, so that reading line by line holds
		 * one line at a time, never the whole body */
		size_t rest = S->in.len - S->in_off;
		if (rest) memmove(S->in.p, S->in.p + S->in_off, rest);
		S->in.len = rest;
		S->in_off = 0;
	}
	if (mg_buf_reserve(&S->in, 16384) != 0) return luaL_error(L, "magnet: out of memory reading the request body");
	int n = magnetReadBody(S->handle, S->in.p + S->in.len, (int)(S->in.cap - S->in.len));
	if (n == -2) {
		S->body_over = 1;
		return -1;
	}
	if (n < 0) return luaL_error(L, "magnet: reading the request body failed");
	if (n == 0) {
		S->body_eof = 1;
		return 0;
	}
	S->in.len += (size_t)n;
	return n;
}

static void body_read_all(lua_State *L, mg_state *S) {
	while (body_fill(L, S) > 0) {
	}
	lua_pushlstring(L, S->in.p ? S->in.p + S->in_off : "", S->in.len - S->in_off);
	S->in_off = S->in.len;
}

/* body_read_line pushes the next line (without "\n"), or nil at EOF. */
static int body_read_line(lua_State *L, mg_state *S) {
	for (;;) {
		char *start = S->in.p + S->in_off;
		size_t avail = S->in.len - S->in_off;
		char *nl = avail ? memchr(start, '\n', avail) : NULL;
		if (nl) {
			lua_pushlstring(L, start, (size_t)(nl - start));
			S->in_off += (size_t)(nl - start) + 1;
			return 1;
		}
		if (body_fill(L, S) <= 0) {
			avail = S->in.len - S->in_off;
			if (avail == 0) {
				lua_pushnil(L);
				return 0;
			}
			lua_pushlstring(L, S->in.p + S->in_off, avail);
			S->in_off = S->in.len;
			return 1;
		}
	}
}

static int body_read_n(lua_State *L, mg_state *S, size_t n) {
	if (n == 0) { /* read(0): "" unless at the end of the body */
		if (S->in.len == S->in_off && body_fill(L, S) <= 0) {
			lua_pushnil(L);
			return 0;
		}
		lua_pushliteral(L, "");
		return 1;
	}
	while (S->in.len - S->in_off < n && body_fill(L, S) > 0) {
	}
	size_t avail = S->in.len - S->in_off;
	if (avail == 0 && n > 0) {
		lua_pushnil(L);
		return 0;
	}
	if (n > avail) n = avail;
	lua_pushlstring(L, S->in.p ? S->in.p + S->in_off : "", n);
	S->in_off += n;
	return 1;
}

/* body_read_number reads a number as io.read("*n") does on a file
 * (fscanf "%lf"): it skips white space, reads the longest prefix that is a
 * number and leaves the rest, the end of the line included. */
static int body_read_number(lua_State *L, mg_state *S) {
	for (;;) {
		while (S->in_off < S->in.len && isspace((unsigned char)S->in.p[S->in_off])) S->in_off++;
		if (S->in_off < S->in.len) break;
		if (body_fill(L, S) <= 0) {
			lua_pushnil(L);
			return 0;
		}
	}
	char num[201];
	size_t n = 0;
	for (;;) {
		while (n < sizeof num - 1 && S->in_off + n < S->in.len) {
			unsigned char c = (unsigned char)S->in.p[S->in_off + n];
			if (!isalnum(c) && c != '.' && c != '+' && c != '-') break;
			num[n++] = (char)c;
		}
		if (n == sizeof num - 1 || S->in_off + n < S->in.len || body_fill(L, S) <= 0) break;
	}
	num[n] = '\0';
	char *end;
	lua_Number v = (lua_Number)strtod(num, &end);
	if (end == num) {
		lua_pushnil(L);
		return 0;
	}
	S->in_off += (size_t)(end - num);
	lua_pushnumber(L, v);
	return 1;
}

/* read_formats implements io.read's formats over the request body. Over
 * the body limit a format's result is nil and the message, as a file read
 * error is. */
static int read_formats(lua_State *L, mg_state *S, int first) {
	int n = lua_gettop(L);
	luaL_checkstack(L, n + LUA_MINSTACK, "too many arguments"); /* one result per format */
	int pushed = 0;
	for (int i = first; i <= n || (i == first && n < first); i++) {
		int top = lua_gettop(L);
		int ok;
		if (n < first) {
			ok = body_read_line(L, S); /* io.read() reads a line */
		} else if (lua_type(L, i) == LUA_TNUMBER) {
			ok = body_read_n(L, S, (size_t)lua_tointeger(L, i));
		} else {
			const char *f = luaL_checkstring(L, i);
			if (f[0] == '*') f++;
			if (f[0] == 'a') {
				body_read_all(L, S);
				ok = 1;
			} else if (f[0] == 'l') {
				ok = body_read_line(L, S);
			} else if (f[0] == 'n') {
				ok = body_read_number(L, S);
			} else {
				return luaL_argerror(L, i, "invalid format");
			}
		}
		if (S->body_over) {
			lua_settop(L, top);
			lua_pushnil(L);
			lua_pushstring(L, body_too_large);
			return pushed + 2;
		}
		pushed++;
		if (!ok) break;
	}
	return pushed;
}

/* io.read and io.stdin:read read the request body. */
int mg_io_read(lua_State *L) { return read_formats(L, UPSTATE(L), 1); }
int mg_stdin_read(lua_State *L) { return read_formats(L, UPSTATE(L), 2); }

static int lines_iter(lua_State *L) {
	mg_state *S = UPSTATE(L);
	body_read_line(L, S);
	if (S->body_over) return luaL_error(L, "%s", body_too_large);
	return 1;
}

/* io.lines() with no file name iterates over the request body. */
int mg_io_lines(lua_State *L) {
	if (lua_gettop(L) >= 1 && !lua_isnil(L, 1)) {
		lua_pushvalue(L, lua_upvalueindex(2)); /* original io.lines */
		lua_insert(L, 1);
		lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
		return lua_gettop(L);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushcclosure(L, lines_iter, 1);
	return 1;
}

/* io.stdin:lines() iterates over the request body. */
int mg_stdin_lines(lua_State *L) {
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushcclosure(L, lines_iter, 1);
	return 1;
}

/* magnet.request.body(): the whole request body as a string, memoised.
 * Over the body limit it raises. */
int mg_request_body(lua_State *L) {
	mg_state *S = UPSTATE(L);
	if (S->request_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->request_ref);
		lua_getfield(L, -1, "_body");
		if (!lua_isnil(L, -1)) return 1;
		lua_pop(L, 1);
		body_read_all(L, S);
		if (S->body_over) return luaL_error(L, "%s", body_too_large);
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, "_body");
		return 1;
	}
	body_read_all(L, S);
	if (S->body_over) return luaL_error(L, "%s", body_too_large);
	return 1;
}
