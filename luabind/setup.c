/* setup.c: a state's set-up and teardown: the sandbox (print, io and os
 * over the request, os.exit and debug.sethook refused) and the magnet
 * table. Safety rules: doc.go. */
#include <stdio.h>
#include <unistd.h>
#include "internal.h"

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
	lua_pushcclosure(L, mg_msghandler, 1);
	S->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	S->globals_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushlightuserdata(L, &mg_hook_key);
	lua_pushlightuserdata(L, S);
	lua_rawset(L, LUA_REGISTRYINDEX);
	/* luaL_unref stores the free list at registry[0]; made here, later
	 * unrefs only overwrite existing keys and never allocate */
	lua_pushinteger(L, 0);
	lua_rawseti(L, LUA_REGISTRYINDEX, 0);
	lua_pushcfunction(L, mg_build_header);
	S->header_fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	mg_box_metatable(L, S);

	/* {__index = _G} for every request's environment */
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_setfield(L, -2, "__index");
	lua_pushvalue(L, -1);
	S->env_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushliteral(L, "hits");
	lua_insert(L, -2);
	lua_pushcclosure(L, mg_run_protected, 2);
	S->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	set_closure(L, S, LUA_GLOBALSINDEX, "print", mg_print);
	mg_guard_finalizers(L, S);

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
	set_closure(L, S, out, "flush", mg_stdout_flush);
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

	/* magnet = setmetatable({}, {__index, __newindex, __metatable});
	 * magnet.cache, like magnet.request, comes from __index and cannot be
	 * replaced, and the metatable cannot be changed */
	lua_createtable(L, 0, 8);
	set_closure(L, S, lua_gettop(L), "flush", mg_magnet_flush);
	set_closure(L, S, lua_gettop(L), "urldecode", mg_urldecode);
	set_closure(L, S, lua_gettop(L), "parse_query", mg_parse_query);
	lua_newtable(L);
	S->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_createtable(L, 0, 3);
	set_closure(L, S, lua_gettop(L), "__index", mg_magnet_index);
	set_closure(L, S, lua_gettop(L), "__newindex", mg_magnet_newindex);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	S->magnet_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_setglobal(L, "magnet");

	/* magnet.request: a table per request whose fields are made on first
	 * use (request.c), and its body function, shared */
	lua_createtable(L, 0, 1);
	set_closure(L, S, lua_gettop(L), "__index", mg_request_index);
	S->request_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushlightuserdata(L, S);
	lua_pushcclosure(L, mg_request_body, 1);
	S->body_fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* ---- memory ---- */

#ifndef LUA_JITLIBNAME
/* Under PUC Lua most allocations are small and short-lived (a request's
 * strings, tables and closures): blocks of up to MG_SMALL bytes are kept
 * on per-size free lists, class c holding blocks of at least 16*c usable
 * bytes, and reused without a trip through malloc and free. */
#include <malloc.h>
#define MG_SMALL (16 * (MG_NCLASS - 1))
#define MG_KEEP 128 /* blocks kept per class */

static void *small_get(mg_state *S, size_t n) {
	size_t c = (n + 15) >> 4;
	void *p = S->small[c];
	if (p == NULL) return malloc(c << 4);
	S->small[c] = *(void **)p;
	S->nsmall[c]--;
	return p;
}

static void small_put(mg_state *S, void *p) {
	size_t c = malloc_usable_size(p) >> 4;
	if (c == 0 || c >= MG_NCLASS || S->nsmall[c] >= MG_KEEP) {
		free(p);
		return;
	}
	*(void **)p = S->small[c];
	S->small[c] = p;
	S->nsmall[c]++;
}

static void small_drain(mg_state *S) {
	for (int c = 0; c < MG_NCLASS; c++) {
		while (S->small[c]) {
			void *p = S->small[c];
			S->small[c] = *(void **)p;
			free(p);
		}
		S->nsmall[c] = 0;
	}
}

/* sys_alloc is luaL_newstate's allocator (realloc and free), with the
 * small blocks reused. */
static void *sys_alloc(mg_state *S, void *ptr, size_t osize, size_t nsize) {
	if (nsize == 0) {
		if (ptr) small_put(S, ptr);
		return NULL;
	}
	if (nsize > MG_SMALL || (ptr && osize > MG_SMALL)) return realloc(ptr, nsize);
	if (ptr && nsize <= osize) return ptr;
	void *p = small_get(S, nsize);
	if (p && ptr) {
		memcpy(p, ptr, osize);
		small_put(S, ptr);
	}
	return p;
}
#endif

/* mg_alloc counts the Lua heap and refuses to grow it past the limit; a
 * refused allocation is a Lua memory error. Frees and shrinks always pass:
 * the collector shrinks tables and strings while it runs. It runs for
 * every allocation: PUC Lua's allocator is sys_alloc, called directly;
 * LuaJIT keeps its own. */
void *mg_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
	mg_state *S = ud;
	if (nsize > osize && S->mem_limit && S->mem_used + (nsize - osize) > S->mem_limit) {
		S->mem_hit = 1;
		return NULL;
	}
#ifdef LUA_JITLIBNAME
	void *p = S->alloc_f(S->alloc_ud, ptr, osize, nsize);
#else
	void *p = sys_alloc(S, ptr, osize, nsize);
#endif
	if (p != NULL || nsize == 0) S->mem_used += nsize - osize;
	return p;
}

/* mg_set_memory_limit caps the Lua heap at bytes (0: no cap). */
void mg_set_memory_limit(mg_state *S, size_t bytes) { S->mem_limit = bytes; }

/* mg_panic replaces golua's default panic handler, which calls abort().
 * Every entry into the state is protected (doc.go), so this runs only if
 * magnet has a bug: it says so and ends the process with a plain exit
 * status, for the supervisor to replace. */
static int mg_panic(lua_State *L) {
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
	fprintf(stderr, "magnet: Lua error outside any protected call, exiting: %s\n", msg);
	fflush(stderr);
	_exit(70);
	return 0;
}

mg_state *mg_new(lua_State *L, uintptr_t handle) {
	mg_state *S = calloc(1, sizeof *S);
	if (!S) return NULL;
	lua_atpanic(L, mg_panic);
	S->alloc_f = lua_getallocf(L, &S->alloc_ud);
	S->mem_used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
	lua_setallocf(L, mg_alloc, S);
	S->L = L;
	S->handle = handle;
	S->header_ref = LUA_NOREF;
	S->request_ref = LUA_NOREF;
	if (lua_cpcall(L, setup, S) != 0) {
		lua_pop(L, 1);
		lua_setallocf(L, S->alloc_f, S->alloc_ud); /* S goes, L is closed next */
#ifndef LUA_JITLIBNAME
		small_drain(S);
#endif
		free(S);
		return NULL;
	}
	return S;
}

/* mg_free frees S after its Lua state has been closed. */
void mg_free(mg_state *S) {
#ifndef LUA_JITLIBNAME
	small_drain(S);
#endif
	free(S->out.p);
	free(S->hdr.p);
	free(S->err.p);
	free(S->in.p);
	free(S->gores.p);
	free(S);
}

/* mg_memory is the Lua heap size in KiB. */
int mg_memory(mg_state *S) { return lua_gc(S->L, LUA_GCCOUNT, 0); }
