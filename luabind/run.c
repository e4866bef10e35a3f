/* run.c: compiling and forgetting scripts, running one for a request, and
 * the time limit hook. Safety rules: doc.go. */
#include <time.h>
#include "internal.h"
#include "respond.h"

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

typedef struct load_args {
	mg_state *S;
	const char *name, *src;
	size_t len;
	int64_t mtime;
	int fn_ref, entry_ref, rc;
} load_args;

static int load_protected(lua_State *L) {
	load_args *a = lua_touserdata(L, 1);
	mg_state *S = a->S;
	lua_pushliteral(L, "@");
	lua_pushstring(L, a->name);
	lua_concat(L, 2);
	a->rc = luaL_loadbuffer(L, a->src, a->len, lua_tostring(L, -1));
	if (a->rc != 0) {
		mg_capture_error(L, S);
		return 0;
	}
	a->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->cache_ref);
	luaL_checktype(L, -1, LUA_TTABLE);
	lua_pushstring(L, a->name);
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "mtime");
	lua_pushnumber(L, (lua_Number)a->mtime);
	lua_rawset(L, -3);
	lua_pushliteral(L, "hits");
	lua_pushinteger(L, 0);
	lua_rawset(L, -3);
	lua_pushvalue(L, -1);
	a->entry_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_rawset(L, -3);
	return 0;
}

/* mg_load compiles a script and records it in magnet.cache. */
int mg_load(mg_state *S, const char *name, const char *src, size_t len, int64_t mtime, int *fn_ref, int *entry_ref) {
	lua_State *L = S->L;
	load_args a = {S, name, src, len, mtime, LUA_NOREF, LUA_NOREF, 0};
	int rc = lua_cpcall(L, load_protected, &a);
	if (rc != 0) {
		mg_capture_error(L, S);
		lua_pop(L, 1);
		luaL_unref(L, LUA_REGISTRYINDEX, a.fn_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, a.entry_ref);
		return rc;
	}
	if (a.rc != 0) return a.rc;
	*fn_ref = a.fn_ref;
	*entry_ref = a.entry_ref;
	return 0;
}

typedef struct unload_args {
	mg_state *S;
	const char *name;
	int entry_ref;
} unload_args;

static int unload_protected(lua_State *L) {
	unload_args *a = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->S->cache_ref);
	luaL_checktype(L, -1, LUA_TTABLE);
	lua_pushstring(L, a->name);
	lua_rawget(L, -2);
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->entry_ref);
	if (lua_rawequal(L, -1, -2)) {
		lua_pushstring(L, a->name);
		lua_pushnil(L);
		lua_rawset(L, -5);
	}
	return 0;
}

/* mg_unload forgets a compiled script; its magnet.cache entry goes too
 * unless a newer load replaced it already. */
void mg_unload(mg_state *S, const char *name, int fn_ref, int entry_ref) {
	lua_State *L = S->L;
	unload_args a = {S, name, entry_ref};
	if (lua_cpcall(L, unload_protected, &a) != 0) lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, entry_ref);
}

/* mg_run_protected is a run's body, called by mg_run under its one
 * lua_pcall (with the message handler) with the mg_state; its upvalues
 * are the string "hits" and the environments' metatable, pushed faster
 * than registry values. It counts the hit and calls the script in a fresh
 * environment. Everything here may raise (a metamethod-free table write
 * still allocates); an error in the script unwinds straight to mg_run. */
int mg_run_protected(lua_State *L) {
	mg_state *S = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->run_entry);
	if (lua_istable(L, -1)) {
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_rawget(L, -2);
		lua_Integer hits = lua_tointeger(L, -1);
		lua_pop(L, 1);
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_pushinteger(L, hits + 1);
		lua_rawset(L, -3);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->run_fn);
	/* room for a script's first few globals without growing the table */
	lua_createtable(L, 0, 4);
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_setmetatable(L, -2);
	lua_setfenv(L, -2);
	lua_call(L, 0, 0);
	return 0;
}

static int collect_protected(lua_State *L) {
	(void)L;
	lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}

/* after_limit runs a full collection once a run hit the memory limit. A
 * state that still fills the limit (keeps more than 7/8 of it, leaving a
 * request no room to run) holds what the scripts stored, in _G or in
 * magnet.cache: it is marked unsound, for the worker to be replaced. */
static void after_limit(mg_state *S) {
	lua_State *L = S->L;
	size_t limit = S->mem_limit;
	/* lua_cpcall allocates (LuaJIT makes a closure), and the heap is at
	 * the limit: lift it while the collection runs */
	S->mem_limit = 0;
	for (int i = 0; i < 3; i++) {
		/* a __gc finalizer that raises ends one collection early */
		if (lua_cpcall(L, collect_protected, NULL) == 0) break;
		lua_pop(L, 1);
	}
	S->mem_limit = limit;
	if (S->mem_used > limit - limit / 8) S->unsound = 1;
	size_t n = S->err.len;
	char msg[160];
	int k = snprintf(msg, sizeof msg, "magnet: the script went over the memory limit of %zu bytes%s",
		limit, n ? ": " : "");
	/* the message first, then what the script's error said */
	mg_buf tail = S->err;
	S->err = (mg_buf){0};
	mg_buf_append(&S->err, msg, (size_t)k);
	if (n) mg_buf_append(&S->err, tail.p, n);
	free(tail.p);
}

/* mg_run runs a cached chunk for one request in a fresh environment.
 * Returns 0, a lua_pcall error code with the message in S->err, or
 * MG_ERRLIMIT when the run went over the memory limit. */
int mg_run(mg_state *S, int fn_ref, int entry_ref, const char *params, const uint32_t *index, int nparams) {
	lua_State *L = S->L;
	/* the previous response has been written: do not keep a huge one's
	 * memory (it must survive mg_run, Output reads it afterwards) */
	mg_buf_shrink(&S->out);
	S->out.len = 0;
	/* a memory error in a push of Go results left gores busy; nothing
	 * pushes from it between runs */
	mg_buf_shrink(&S->gores);
	S->gores_busy = 0;
	S->hdr.len = 0;
	S->err.len = 0;
	S->in.len = 0;
	S->in_off = 0;
	S->body_eof = 0;
	S->status = 0;
	S->structured = 0;
	S->mem_hit = 0;
	S->req.params = params;
	S->req.index = index;
	S->req.nparams = nparams;
	S->run_fn = fn_ref;
	S->run_entry = entry_ref;
	if (S->timeout_ns) {
		arm_hook(S);
		S->deadline_ns = now_ns() + S->timeout_ns;
	}
	int base = lua_gettop(L);
	/* none of these pushes allocates */
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->handler_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->run_ref);
	lua_pushlightuserdata(L, S);
	int rc = lua_pcall(L, 1, 0, base + 1);
	if (rc != 0 && lua_touserdata(L, -1) == &mg_exit_key) rc = 0; /* magnet.exit */
	if (rc != 0) {
		mg_capture_error(L, S);
		S->nerrors++;
	} else if (S->structured) {
		/* under its own lua_pcall: a bad header is reported without a
		 * traceback */
		lua_settop(L, base);
		lua_rawgeti(L, LUA_REGISTRYINDEX, S->header_fn_ref);
		lua_pushlightuserdata(L, S);
		rc = lua_pcall(L, 1, 0, 0);
		if (rc != 0) mg_capture_error(L, S);
	}
	lua_settop(L, base);
	/* setfenv(0, t) in a script replaced the globals of the state's thread */
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->globals_ref);
	lua_replace(L, LUA_GLOBALSINDEX);
	/* luaL_unref overwrites existing registry keys only: no allocation */
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
	if (S->mem_hit) {
		after_limit(S);
		rc = MG_ERRLIMIT;
	}
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

/* mg_own_hook puts the state's own hook back on L: the time limit hook,
 * or none. The slow log's one-shot hook (slowlog.c) calls it when done. */
void mg_own_hook(lua_State *L, mg_state *S) {
	if (S->timeout_ns) lua_sethook(L, timeout_hook, LUA_MASKCOUNT, 10000);
	else lua_sethook(L, NULL, 0, 0);
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
