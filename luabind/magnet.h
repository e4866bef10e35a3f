/* magnet.h: the C half of luabind as Go sees it. Everything a request
 * touches on its hot path is C, so that one request costs one cgo call and
 * no Go callback unless the script reads the request body. The C files
 * share internal.h; their safety rules are in doc.go. */
#ifndef MAGNET_H
#define MAGNET_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* mg_buf is a growable byte buffer owned by C (malloc). */
typedef struct mg_buf {
	char *p;
	size_t len, cap;
} mg_buf;

/* mg_req describes the current request. The pointers are Go memory lent
 * for the duration of one mg_run call only. */
typedef struct mg_req {
	const char *params;    /* bytes the index points into */
	const uint32_t *index; /* 4 per param: name off, name len, value off, value len */
	int nparams;
} mg_req;

/* mg_state is one worker's Lua state plus its per-request scratch. */
typedef struct mg_state {
	lua_State *L;
	uintptr_t handle;   /* cgo.Handle of the Go State, for callbacks */
	int env_mt_ref;     /* {__index = _G}, shared by every request */
	int traceback_ref;  /* debug.traceback */
	int handler_ref;    /* message handler of script runs (msghandler) */
	int globals_ref;    /* the globals table, restored after each run */
	int magnet_ref;     /* the magnet table */
	int cache_ref;      /* magnet.cache */
	int tostring_ref;   /* the original tostring */
	int header_ref;     /* magnet.header of this request, or LUA_NOREF */
	int request_ref;    /* magnet.request of this request, or LUA_NOREF */
	int status;         /* magnet.status, 0 when unset */
	int structured;     /* the script used magnet.header/magnet.status */
	int body_eof;       /* the request body has been read to its end */
	mg_buf out;         /* printed output */
	mg_buf hdr;         /* header block written for structured responses */
	mg_buf err;         /* error message and traceback of a failed run */
	mg_buf in;          /* request body read ahead by io.read("*l") */
	size_t in_off;
	mg_req req;
	int nerrors;        /* uncaught errors so far, for tests */
	int64_t timeout_ns; /* run time limit per request, 0 = none */
	int64_t deadline_ns;
} mg_state;

mg_state *mg_new(lua_State *L, uintptr_t handle);
void mg_free(mg_state *S);
int mg_load(mg_state *S, const char *name, const char *src, size_t len, int64_t mtime, int *fn_ref, int *entry_ref);
void mg_unload(mg_state *S, const char *name, int fn_ref, int entry_ref);
int mg_run(mg_state *S, int fn_ref, int entry_ref, const char *params, const uint32_t *index, int nparams);
int mg_dostring(mg_state *S, const char *src, size_t len, const char *name);
void mg_register_go(mg_state *S, const char *table, const char *name, int id);
int mg_memory(mg_state *S);
void mg_set_timeout(mg_state *S, int64_t ns);

/* Lua error helpers for Go callbacks: Go never calls anything that can
 * raise; it pushes an error value and returns MG_GOERROR instead. */
#define MG_GOERROR (-1)

#endif
