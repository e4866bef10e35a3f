/* magnet.c: the per-request Lua machinery of a worker.
 *
 * Rules that keep a long-lived state safe under cgo:
 *  - Lua errors (longjmp) only ever unwind C frames: every Go callback
 *    returns normally and C raises the error afterwards (mg_gofunc).
 *  - Scripts run under lua_pcall with debug.traceback as handler; the
 *    real pcall, xpcall and error are left in place for scripts.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <ctype.h>
#include <time.h>
#include "magnet.h"
#include "_cgo_export.h"

static int64_t now_ns(void);
static void arm_hook(mg_state *S);

#define UPSTATE(L) ((mg_state *)lua_touserdata((L), lua_upvalueindex(1)))

static int buf_reserve(mg_buf *b, size_t extra) {
	size_t need = b->len + extra;
	if (need <= b->cap) return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < need) cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int buf_append(mg_buf *b, const char *s, size_t n) {
	if (buf_reserve(b, n) != 0) return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static void shrink(mg_buf *b) {
	if (b->cap > (4u << 20)) {
		free(b->p);
		b->p = NULL;
		b->len = b->cap = 0;
	}
}

static void buf_set(mg_buf *b, const char *s, size_t n) {
	b->len = 0;
	buf_append(b, s, n);
}

/* append_output adds one print/io.write argument to the response. */
static void append_output(lua_State *L, mg_state *S, const char *s, size_t n) {
	if (buf_append(&S->out, s, n) != 0) {
		lua_pushliteral(L, "magnet: out of memory for the response");
		lua_error(L);
	}
}

/* print: lua-magnet's print, no separator and no newline. */
static int mg_print(lua_State *L) {
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

static int mg_io_write(lua_State *L) {
	mg_state *S = UPSTATE(L);
	write_args(L, S, 1);
	lua_pushvalue(L, lua_upvalueindex(2)); /* io.stdout */
	return 1;
}

/* stdout:write(...) — method form, self is argument 1. */
static int mg_stdout_write(lua_State *L) {
	mg_state *S = UPSTATE(L);
	write_args(L, S, 2);
	lua_pushvalue(L, 1);
	return 1;
}

static int mg_noop_self(lua_State *L) {
	lua_pushvalue(L, 1);
	return 1;
}

/* ---- request body ---- */

/* body_fill reads more of the request body into S->in; returns bytes read, 0 at EOF. */
static int body_fill(lua_State *L, mg_state *S) {
	if (S->body_eof) return 0;
	if (S->in_off > 0) {
		/* keep only the unread part, so that reading line by line holds
		 * one line at a time, never the whole body */
		size_t rest = S->in.len - S->in_off;
		if (rest) memmove(S->in.p, S->in.p + S->in_off, rest);
		S->in.len = rest;
		S->in_off = 0;
	}
	if (buf_reserve(&S->in, 16384) != 0) return luaL_error(L, "magnet: out of memory reading the request body");
	int n = magnetReadBody(S->handle, S->in.p + S->in.len, (int)(S->in.cap - S->in.len));
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
		if (body_fill(L, S) == 0) {
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
		if (S->in.len == S->in_off && body_fill(L, S) == 0) {
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
		if (body_fill(L, S) == 0) {
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
		if (n == sizeof num - 1 || S->in_off + n < S->in.len || body_fill(L, S) == 0) break;
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

/* read_formats implements io.read's formats over the request body. */
static int read_formats(lua_State *L, mg_state *S, int first) {
	int n = lua_gettop(L);
	luaL_checkstack(L, n + LUA_MINSTACK, "too many arguments"); /* one result per format */
	if (n < first) {
		body_read_line(L, S);
		return 1;
	}
	int pushed = 0;
	for (int i = first; i <= n; i++) {
		int ok;
		if (lua_type(L, i) == LUA_TNUMBER) {
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
		pushed++;
		if (!ok) break;
	}
	return pushed;
}

static int mg_io_read(lua_State *L) { return read_formats(L, UPSTATE(L), 1); }
static int mg_stdin_read(lua_State *L) { return read_formats(L, UPSTATE(L), 2); }

static int lines_iter(lua_State *L) {
	body_read_line(L, UPSTATE(L));
	return 1;
}

/* io.lines() with no file name iterates over the request body. */
static int mg_io_lines(lua_State *L) {
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

static int mg_stdin_lines(lua_State *L) {
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushcclosure(L, lines_iter, 1);
	return 1;
}

/* ---- params ---- */

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
static int mg_getenv(lua_State *L) {
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

/* magnet.request.body(): the whole request body as a string, memoised. */
static int mg_request_body(lua_State *L) {
	mg_state *S = UPSTATE(L);
	if (S->request_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->request_ref);
		lua_getfield(L, -1, "_body");
		if (!lua_isnil(L, -1)) return 1;
		lua_pop(L, 1);
		body_read_all(L, S);
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, "_body");
		return 1;
	}
	body_read_all(L, S);
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

static int mg_magnet_index(lua_State *L) {
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

static int mg_magnet_newindex(lua_State *L) {
	mg_state *S = UPSTATE(L);
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
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
	lua_rawset(L, 1);
	return 0;
}

/* ---- header block for structured responses ---- */

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
	if (buf_append(&S->hdr, k, kn) || buf_append(&S->hdr, ": ", 2) || buf_append(&S->hdr, v, vn) ||
	    buf_append(&S->hdr, "\r\n", 2))
		luaL_error(L, "magnet: out of memory");
}

/* build_header runs under lua_cpcall: header values are script data. */
static int build_header(lua_State *L) {
	mg_state *S = lua_touserdata(L, 1);
	char line[32];
	int n = snprintf(line, sizeof line, "Status: %d\r\n", S->status ? S->status : 200);
	S->hdr.len = 0;
	buf_append(&S->hdr, line, (size_t)n);
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
	if (!has_ct) buf_append(&S->hdr, "Content-Type: text/html\r\n", 25);
	buf_append(&S->hdr, "\r\n", 2);
	return 0;
}

/* ---- errors ---- */

/* msghandler is the message handler of a script run: it turns an error
 * object that is not a string into one (its __tostring, or its type) and
 * adds the traceback, as debug.traceback does for strings. */
static int msghandler(lua_State *L) {
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

static void capture_error(lua_State *L, mg_state *S) {
	size_t n;
	const char *msg = lua_tolstring(L, -1, &n);
	if (msg) {
		buf_set(&S->err, msg, n);
	} else if (lua_istable(L, -1)) {
		/* error({...}) escaped a protected call without msghandler */
		buf_set(&S->err, "uncaught error object (table)", 29);
	} else {
		const char *tn = luaL_typename(L, -1);
		buf_set(&S->err, "uncaught error object (", 23);
		buf_append(&S->err, tn, strlen(tn));
		buf_append(&S->err, ")", 1);
	}
}

/* ---- Go functions ---- */

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

/* ---- script-facing replacements ---- */

/* os.exit would end the worker in the middle of a response. */
static int mg_os_exit(lua_State *L) {
	return luaL_error(L, "os.exit is not allowed in magnet scripts");
}

/* debug.sethook would remove the hook that enforces the time limit: it
 * is refused while a limit is set and is the original otherwise. */
static int mg_sethook(lua_State *L) {
	mg_state *S = UPSTATE(L);
	if (S->timeout_ns > 0) return luaL_error(L, "debug.sethook is not allowed while a time limit is set");
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 0);
	return 0;
}

/* hook_key: registry[&hook_key] is the mg_state of a lua_State, for the
 * time limit hook, which gets no upvalues. */
static char hook_key;

/* ---- set-up ---- */

static void set_closure(lua_State *L, mg_state *S, int table, const char *name, lua_CFunction f) {
	lua_pushlightuserdata(L, S);
	lua_pushcclosure(L, f, 1);
	lua_setfield(L, table, name);
}

static int setup(lua_State *L) {
	mg_state *S = lua_touserdata(L, 1);
	lua_settop(L, 0);

	/* golua hides pcall/xpcall; scripts get the real ones back. */
	lua_getglobal(L, "unsafe_pcall");
	if (!lua_isnil(L, -1)) lua_setglobal(L, "pcall");
	else lua_pop(L, 1);
	lua_getglobal(L, "unsafe_xpcall");
	if (!lua_isnil(L, -1)) lua_setglobal(L, "xpcall");
	else lua_pop(L, 1);
	lua_pushnil(L);
	lua_setglobal(L, "unsafe_pcall");
	lua_pushnil(L);
	lua_setglobal(L, "unsafe_xpcall");

	lua_getglobal(L, "tostring");
	S->tostring_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getglobal(L, "debug");
	lua_getfield(L, -1, "traceback");
	S->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushlightuserdata(L, S);
	lua_getfield(L, -2, "sethook");
	lua_pushcclosure(L, mg_sethook, 2);
	lua_setfield(L, -2, "sethook");
	lua_pop(L, 1);
	lua_pushlightuserdata(L, S);
	lua_pushcclosure(L, msghandler, 1);
	S->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	S->globals_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushlightuserdata(L, &hook_key);
	lua_pushlightuserdata(L, S);
	lua_rawset(L, LUA_REGISTRYINDEX);

	/* {__index = _G} for every request's environment */
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_setfield(L, -2, "__index");
	S->env_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	set_closure(L, S, LUA_GLOBALSINDEX, "print", mg_print);

	/* os.getenv */
	lua_getglobal(L, "os");
	lua_pushlightuserdata(L, S);
	lua_getfield(L, -2, "getenv");
	lua_pushcclosure(L, mg_getenv, 2);
	lua_setfield(L, -2, "getenv");
	lua_pushcfunction(L, mg_os_exit);
	lua_setfield(L, -2, "exit");
	lua_pop(L, 1);

	/* io: write/read/lines and stdin/stdout proxies over the request */
	lua_getglobal(L, "io");
	int io = lua_gettop(L);
	set_closure(L, S, io, "read", mg_io_read);
	lua_pushlightuserdata(L, S);
	lua_getfield(L, io, "lines");
	lua_pushcclosure(L, mg_io_lines, 2);
	lua_setfield(L, io, "lines");
	lua_createtable(L, 0, 4); /* io.stdout */
	int out = lua_gettop(L);
	set_closure(L, S, out, "write", mg_stdout_write);
	lua_pushcfunction(L, mg_noop_self);
	lua_setfield(L, out, "flush");
	lua_pushcfunction(L, mg_noop_self);
	lua_setfield(L, out, "setvbuf");
	lua_pushlightuserdata(L, S);
	lua_pushvalue(L, out);
	lua_pushcclosure(L, mg_io_write, 2);
	lua_setfield(L, io, "write");
	lua_setfield(L, io, "stdout");
	lua_createtable(L, 0, 2); /* io.stdin */
	int in = lua_gettop(L);
	set_closure(L, S, in, "read", mg_stdin_read);
	set_closure(L, S, in, "lines", mg_stdin_lines);
	lua_setfield(L, io, "stdin");
	lua_pop(L, 1);

	/* magnet = setmetatable({cache = {}}, {__index, __newindex}) */
	lua_createtable(L, 0, 8);
	lua_newtable(L);
	lua_pushvalue(L, -1);
	S->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_setfield(L, -2, "cache");
	lua_createtable(L, 0, 2);
	set_closure(L, S, lua_gettop(L), "__index", mg_magnet_index);
	set_closure(L, S, lua_gettop(L), "__newindex", mg_magnet_newindex);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	S->magnet_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_setglobal(L, "magnet");
	return 0;
}

mg_state *mg_new(lua_State *L, uintptr_t handle) {
	mg_state *S = calloc(1, sizeof *S);
	if (!S) return NULL;
	S->L = L;
	S->handle = handle;
	S->header_ref = LUA_NOREF;
	S->request_ref = LUA_NOREF;
	if (lua_cpcall(L, setup, S) != 0) {
		lua_pop(L, 1);
		free(S);
		return NULL;
	}
	return S;
}

void mg_free(mg_state *S) {
	free(S->out.p);
	free(S->hdr.p);
	free(S->err.p);
	free(S->in.p);
	free(S);
}

int mg_dostring(mg_state *S, const char *src, size_t len, const char *name) {
	lua_State *L = S->L;
	int rc = luaL_loadbuffer(L, src, len, name);
	if (rc == 0) rc = lua_pcall(L, 0, 0, 0);
	if (rc != 0) {
		capture_error(L, S);
		lua_pop(L, 1);
	}
	return rc;
}

/* mg_load compiles a script and records it in magnet.cache. */
int mg_load(mg_state *S, const char *name, const char *src, size_t len, int64_t mtime, int *fn_ref, int *entry_ref) {
	lua_State *L = S->L;
	size_t nlen = strlen(name);
	char *chunkname = malloc(nlen + 2);
	if (!chunkname) return LUA_ERRMEM;
	chunkname[0] = '@';
	memcpy(chunkname + 1, name, nlen + 1);
	int rc = luaL_loadbuffer(L, src, len, chunkname);
	free(chunkname);
	if (rc != 0) {
		capture_error(L, S);
		lua_pop(L, 1);
		return rc;
	}
	*fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->cache_ref);
	lua_pushlstring(L, name, nlen);
	lua_createtable(L, 0, 2);
	lua_pushnumber(L, (lua_Number)mtime);
	lua_setfield(L, -2, "mtime");
	lua_pushinteger(L, 0);
	lua_setfield(L, -2, "hits");
	lua_pushvalue(L, -1);
	*entry_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	return 0;
}

/* mg_unload forgets a compiled script; its magnet.cache entry goes too
 * unless a newer load replaced it already. */
void mg_unload(mg_state *S, const char *name, int fn_ref, int entry_ref) {
	lua_State *L = S->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->cache_ref);
	lua_getfield(L, -1, name);
	lua_rawgeti(L, LUA_REGISTRYINDEX, entry_ref);
	if (lua_rawequal(L, -1, -2)) {
		lua_pushnil(L);
		lua_setfield(L, -4, name);
	}
	lua_pop(L, 3);
	luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, entry_ref);
}

/* mg_run runs a cached chunk for one request in a fresh environment.
 * Returns 0, or a lua_pcall error code with the message in S->err. */
int mg_run(mg_state *S, int fn_ref, int entry_ref, const char *params, const uint32_t *index, int nparams) {
	lua_State *L = S->L;
	/* the previous response has been written: do not keep a huge one's
	 * memory (it must survive mg_run, Output reads it afterwards) */
	shrink(&S->out);
	S->out.len = 0;
	S->hdr.len = 0;
	S->err.len = 0;
	S->in.len = 0;
	S->in_off = 0;
	S->body_eof = 0;
	S->status = 0;
	S->structured = 0;
	S->req.params = params;
	S->req.index = index;
	S->req.nparams = nparams;
	if (S->timeout_ns) {
		arm_hook(S);
		S->deadline_ns = now_ns() + S->timeout_ns;
	}
	int base = lua_gettop(L);

	lua_rawgeti(L, LUA_REGISTRYINDEX, entry_ref);
	lua_getfield(L, -1, "hits");
	lua_Integer hits = lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_pushinteger(L, hits + 1);
	lua_setfield(L, -2, "hits");
	lua_pop(L, 1);

	lua_rawgeti(L, LUA_REGISTRYINDEX, S->handler_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
	lua_createtable(L, 0, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->env_mt_ref);
	lua_setmetatable(L, -2);
	lua_setfenv(L, -2);
	int rc = lua_pcall(L, 0, 0, base + 1);
	if (rc != 0) {
		capture_error(L, S);
		S->nerrors++;
	} else if (S->structured) {
		rc = lua_cpcall(L, build_header, S);
		if (rc != 0) capture_error(L, S);
	}
	lua_settop(L, base);
	/* setfenv(0, t) in a script replaced the globals of the state's thread */
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->globals_ref);
	lua_replace(L, LUA_GLOBALSINDEX);
	if (S->header_ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, S->header_ref);
		S->header_ref = LUA_NOREF;
	}
	if (S->request_ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, S->request_ref);
		S->request_ref = LUA_NOREF;
	}
	S->req.params = NULL;
	S->req.index = NULL;
	S->req.nparams = 0;
	S->deadline_ns = 0;
	if (S->timeout_ns) arm_hook(S);
	/* do not keep the memory of one huge request body */
	shrink(&S->in);
	return rc;
}

/* ---- run time limit ---- */

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* timeout_hook finds its mg_state through the registry (hooks get no
 * upvalues). Once the deadline has passed it fires on every instruction,
 * so a script cannot swallow the error with pcall and loop on. */
static void timeout_hook(lua_State *L, lua_Debug *ar) {
	(void)ar;
	lua_pushlightuserdata(L, &hook_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	mg_state *S = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (S && S->deadline_ns && now_ns() > S->deadline_ns) {
		lua_sethook(L, timeout_hook, LUA_MASKCOUNT, 1);
		luaL_error(L, "magnet: script ran longer than its time limit (%d ms)", (int)(S->timeout_ns / 1000000));
	}
}

/* arm_hook (re)installs the time limit hook on the state's main thread. */
static void arm_hook(mg_state *S) {
	lua_sethook(S->L, timeout_hook, LUA_MASKCOUNT, 10000);
}

/* mg_set_timeout limits each run to ns nanoseconds of wall time, checked
 * every 10000 VM instructions (interpreted code only under LuaJIT). */
void mg_set_timeout(mg_state *S, int64_t ns) {
	S->timeout_ns = ns > 0 ? ns : 0;
	if (ns > 0) arm_hook(S);
	else lua_sethook(S->L, NULL, 0, 0);
}

/* mg_memory is the Lua heap size in KiB. */
int mg_memory(mg_state *S) { return lua_gc(S->L, LUA_GCCOUNT, 0); }
