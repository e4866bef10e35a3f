/* output.c: print, io.write and io.stdout, appending to the response in
 * S->out, and flushing it to the client while the script runs. Safety
 * rules: doc.go. */
#include "internal.h"
#include "_cgo_export.h"

/* headers_sent is the __newindex of a header table once the header block
 * has gone out. */
static int headers_sent(lua_State *L) { return luaL_error(L, "magnet: headers already sent"); }

/* seal_header makes magnet.header read-only after the first flush: its
 * entries move to a table its __index reads, and every write raises. */
static void seal_header(lua_State *L, mg_state *S) {
	luaL_checkstack(L, 6, "flushing the response");
	if (S->header_ref == LUA_NOREF) {
		lua_newtable(L);
		S->header_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->header_ref);
	int h = lua_gettop(L);
	lua_createtable(L, 0, 2); /* the metatable */
	lua_newtable(L);          /* the entries */
	int kept = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, h)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, kept);
	}
	lua_pushnil(L);
	while (lua_next(L, h)) { /* clearing fields during a traversal is allowed */
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, h);
	}
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, headers_sent);
	lua_setfield(L, -2, "__newindex");
	lua_setmetatable(L, h);
	lua_pop(L, 1);
}

/* mg_flush sends the header block (on the first flush), what was printed
 * since the last flush, and then more[0:n], through the worker's writer
 * (magnetFlush in state.go). It runs inside a protected call, from a Lua
 * C function; Go only returns a code, and C raises after Go returned. A
 * run without a writer keeps everything in S->out. */
void mg_flush(lua_State *L, mg_state *S, const char *more, size_t n) {
	if (!S->can_flush) {
		if (n && mg_buf_append(&S->out, more, n) != 0) luaL_error(L, "magnet: out of memory for the response");
		return;
	}
	if (S->flush_failed) luaL_error(L, "magnet: client closed the connection");
	const char *h = NULL;
	size_t hn = 0;
	if (!S->sent) {
		if (!S->structured && S->out.len == 0 && n == 0) return; /* nothing to send yet */
		if (S->structured) {
			luaL_checkstack(L, 2, "flushing the response");
			lua_pushcfunction(L, mg_build_header);
			lua_pushlightuserdata(L, S);
			lua_call(L, 1, 0);
			h = S->hdr.p;
			hn = S->hdr.len;
		}
		seal_header(L, S);
		S->sent = 1;
	}
	int rc = 0;
	if (hn || S->out.len) rc = magnetFlush(S->handle, (char *)h, hn, S->out.p, S->out.len);
	S->out.len = 0;
	if (rc == 0 && n) rc = magnetFlush(S->handle, NULL, 0, (char *)more, n);
	if (rc != 0) {
		S->flush_failed = 1;
		luaL_error(L, "magnet: client closed the connection");
	}
}

/* append_output adds one print/io.write argument to the response; past
 * the flush threshold the output goes to the client. A long string goes
 * out from where it is, without a copy. */
static void append_output(lua_State *L, mg_state *S, const char *s, size_t n) {
	if (S->flush_at && S->can_flush && S->out.len + n >= S->flush_at) {
		if (n >= S->flush_at) {
			mg_flush(L, S, s, n);
			return;
		}
		if (mg_buf_append(&S->out, s, n) != 0) luaL_error(L, "magnet: out of memory for the response");
		mg_flush(L, S, NULL, 0);
		return;
	}
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

/* io.stdout:setvbuf does nothing: the worker writes the response. */
int mg_noop_self(lua_State *L) {
	lua_pushvalue(L, 1);
	return 1;
}

/* io.stdout:flush() sends what was printed so far, headers first. */
int mg_stdout_flush(lua_State *L) {
	mg_flush(L, UPSTATE(L), NULL, 0);
	lua_pushvalue(L, 1);
	return 1;
}

/* magnet.flush() sends what was printed so far, headers first. */
int mg_magnet_flush(lua_State *L) {
	mg_flush(L, UPSTATE(L), NULL, 0);
	return 0;
}
