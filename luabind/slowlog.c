/* slowlog.c: the Lua traceback of a slow request, taken on the serving
 * thread at another thread's request. Safety rules: doc.go.
 *
 * The watchdog goroutine cannot walk the stack of a running state. It calls
 * mg_slow_arm, which installs a one-shot count hook with lua_sethook (the
 * one Lua call that may be made from another thread or a signal handler).
 * The hook runs on the serving thread inside the VM: it writes the
 * traceback into the record's fixed buffer with lua_getstack and
 * lua_getinfo (neither allocates nor raises), puts the state's own hook
 * back (the time limit hook, or none) and marks the record done. A run
 * stuck in C never reaches the hook; the watchdog gives up and disarms. */
#include <stdarg.h>
#include <stdio.h>
#include "internal.h"

/* run.c: the state's own hook, restored on L once the traceback is taken */
void mg_own_hook(lua_State *L, mg_state *S);

enum { SLOW_IDLE, SLOW_ARMED, SLOW_WRITING, SLOW_DONE };

/* SLOW_FRAMES is the most stack levels written, as PHP-FPM's default
 * request_slowlog_trace_depth. */
#define SLOW_FRAMES 20

typedef struct mg_slow {
	int state; /* SLOW_*, accessed atomically */
	size_t len;
	char text[4096];
} mg_slow;

/* mg_slow_key: registry[&mg_slow_key] is the state's mg_slow, a userdata */
static char mg_slow_key;

static int cas(int *p, int from, int to) {
	return __atomic_compare_exchange_n(p, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void put(mg_slow *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(mg_slow *w, const char *fmt, ...) {
	if (w->len >= sizeof w->text) return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(w->text + w->len, sizeof w->text - w->len, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	w->len += (size_t)n;
	if (w->len > sizeof w->text - 1) w->len = sizeof w->text - 1;
}

/* walk writes L's stack, innermost first, one line per level, in
 * debug.traceback's words. */
static void walk(lua_State *L, mg_slow *w) {
	lua_Debug ar;
	int level = 0;
	for (; level < SLOW_FRAMES && lua_getstack(L, level, &ar); level++) {
		if (!lua_getinfo(L, "Snl", &ar)) break;
		if (ar.currentline > 0) put(w, "%s:%d:", ar.short_src, ar.currentline);
		else put(w, "%s:", ar.short_src);
		if (ar.namewhat && *ar.namewhat) put(w, " in function '%s'\n", ar.name ? ar.name : "?");
		else if (*ar.what == 'm') put(w, " in main chunk\n");
		else if (*ar.what == 'C' || *ar.what == 't') put(w, " ?\n");
		else put(w, " in function <%s:%d>\n", ar.short_src, ar.linedefined);
	}
	if (level == SLOW_FRAMES && lua_getstack(L, level, &ar)) put(w, "...\n");
}

/* slow_hook is the one-shot hook. It raises nothing and calls no Go. */
static void slow_hook(lua_State *L, lua_Debug *ar) {
	(void)ar;
	lua_pushlightuserdata(L, &mg_hook_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	mg_state *S = lua_touserdata(L, -1);
	lua_pushlightuserdata(L, &mg_slow_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	mg_slow *w = lua_touserdata(L, -1);
	lua_pop(L, 2);
	if (w && cas(&w->state, SLOW_ARMED, SLOW_WRITING)) {
		w->len = 0;
		walk(L, w);
		__atomic_store_n(&w->state, SLOW_DONE, __ATOMIC_RELEASE);
	}
	if (S) mg_own_hook(L, S);
	else lua_sethook(L, NULL, 0, 0);
}

static int slow_new_protected(lua_State *L) {
	mg_slow **out = lua_touserdata(L, 1);
	lua_pushlightuserdata(L, &mg_slow_key);
	mg_slow *w = lua_newuserdata(L, sizeof *w);
	memset(w, 0, sizeof *w);
	lua_rawset(L, LUA_REGISTRYINDEX);
	*out = w;
	return 0;
}

/* mg_slow_new makes the state's slow log record; call it on the serving
 * thread between runs. It lives as long as the state. NULL: no memory. */
mg_slow *mg_slow_new(mg_state *S) {
	mg_slow *w = NULL;
	if (lua_cpcall(S->L, slow_new_protected, &w) != 0) {
		lua_pop(S->L, 1);
		return NULL;
	}
	return w;
}

/* mg_slow_arm asks for a traceback at the next VM instruction. Any thread.
 * Returns 0 while a traceback is being written. */
int mg_slow_arm(mg_state *S, mg_slow *w) {
	if (!cas(&w->state, SLOW_IDLE, SLOW_ARMED) && !cas(&w->state, SLOW_DONE, SLOW_ARMED) &&
		__atomic_load_n(&w->state, __ATOMIC_ACQUIRE) != SLOW_ARMED)
		return 0;
	lua_sethook(S->L, slow_hook, LUA_MASKCOUNT, 1);
	return 1;
}

/* mg_slow_done reports whether the traceback is written: then text and len
 * hold it until the next mg_slow_arm. Any thread. */
int mg_slow_done(mg_slow *w) {
	return __atomic_load_n(&w->state, __ATOMIC_ACQUIRE) == SLOW_DONE;
}

/* mg_slow_cancel withdraws a request the hook has not taken up: the run is
 * in C. The hook stays installed until the VM runs again, and then only
 * restores the state's own hook. Returns 0 if the hook is writing or done. */
int mg_slow_cancel(mg_slow *w) {
	return cas(&w->state, SLOW_ARMED, SLOW_IDLE);
}

const char *mg_slow_text(mg_slow *w, size_t *len) {
	*len = w->len;
	return w->text;
}
