/* run.c: compiling and forgetting scripts, running one for a request, and
 * the time limit hook. Safety rules: doc.go. */
#include <time.h>
#include "internal.h"

static int64_t now_ns(void);
static void arm_hook(mg_state *S);

/* mg_dostring runs set-up code in the global environment, under lua_pcall
 * without a message handler. */
int mg_dostring(mg_state *S, const char *src, size_t len, const char *name) {
	lua_State *L = S->L;
	int rc = luaL_loadbuffer(L, src, len, name);
	if (rc == 0) rc = lua_pcall(L, 0, 0, 0);
	if (rc != 0) {
		mg_capture_error(L, S);
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
		mg_capture_error(L, S);
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
	mg_buf_shrink(&S->out);
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
		mg_capture_error(L, S);
		S->nerrors++;
	} else if (S->structured) {
		rc = lua_cpcall(L, mg_build_header, S);
		if (rc != 0) mg_capture_error(L, S);
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
	mg_buf_shrink(&S->in);
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
	lua_pushlightuserdata(L, &mg_hook_key);
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

/* mg_hook_key: registry[&mg_hook_key] is the mg_state of a lua_State, for
 * the time limit hook, which gets no upvalues. setup.c sets it. */
char mg_hook_key;
