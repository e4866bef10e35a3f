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

/* MG_NCLASS: size classes of the small blocks the PUC Lua allocator
 * reuses (setup.c). */
#define MG_NCLASS 17

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
	int request_mt_ref; /* magnet.request's metatable (request.c) */
	int body_fn_ref;    /* magnet.request.body, shared by every request */
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
	/* memory: mg_alloc wraps the allocator the state was made with and
	 * counts what the Lua heap holds */
	lua_Alloc alloc_f;
	void *alloc_ud;
	size_t mem_used;    /* bytes the Lua heap holds now */
	size_t mem_limit;   /* refuse to grow past this, 0 = no limit */
	int mem_hit;        /* an allocation was refused during this run */
	int unsound;        /* over the limit even after a full collection */
	void *small[MG_NCLASS]; /* free small blocks by size class (setup.c) */
	int nsmall[MG_NCLASS];
	int run_ref;        /* mg_run_protected, called with lua_pcall */
	int header_fn_ref;  /* mg_build_header, called with lua_pcall */
	int box_mt_ref;     /* metatable of result boxes (gofunc.c) */
	mg_buf gores;       /* results of a Go call, reused (gofunc.c) */
	int gores_busy;     /* C is pushing from gores: a nested call takes a box */
	int run_fn, run_entry; /* mg_run's arguments */
	/* output flushing (output.c) and the body limit (body.c); Go sets
	 * them before each run */
	size_t flush_at;    /* send the output once it reaches this, 0 = never */
	int can_flush;      /* the run has a writer (magnetFlush) */
	int sent;           /* the header block has gone out: headers are final */
	int flush_failed;   /* a flush failed: the client is gone */
	int body_over;      /* the body went over its limit (magnetReadBody -2) */
	int gc_errors;      /* __gc finalizer errors ignored since Go last looked */
	char gc_error[200]; /* the first of them */
} mg_state;

mg_state *mg_new(lua_State *L, uintptr_t handle);
void mg_free(mg_state *S);
int mg_load(mg_state *S, const char *name, const char *src, size_t len, int64_t mtime, int *fn_ref, int *entry_ref);
void mg_unload(mg_state *S, const char *name, int fn_ref, int entry_ref);
int mg_run(mg_state *S, int fn_ref, int entry_ref, const char *params, const uint32_t *index, int nparams);
int mg_dostring(mg_state *S, const char *src, size_t len, const char *name);
int mg_register_go(mg_state *S, const char *table, const char *name, int id);
int mg_register_rows(mg_state *S, const char *table, const char *name);
int mg_memory(mg_state *S);
void mg_set_timeout(mg_state *S, int64_t ns);
void mg_set_memory_limit(mg_state *S, size_t bytes);

/* MG_ERRLIMIT is mg_run's result when the run hit the memory limit, even
 * if the script caught the error. */
#define MG_ERRLIMIT 100

/* A Go-backed function never touches the Lua stack from Go: it encodes its
 * results into a C buffer (these opcodes, see gofunc.c) and C pushes them
 * after Go has returned. MG_GOERROR: the last op is the error message. */
#define MG_GOERROR (-1)
enum {
	MG_OP_NIL = 'N',   /* push nil */
	MG_OP_BOOL = 'B',  /* 1 byte: push a boolean */
	MG_OP_NUM = 'D',   /* double: push a number */
	MG_OP_STR = 'S',   /* uint64 length, bytes: push a string */
	MG_OP_TABLE = 'T', /* int32 narr, int32 nrec: push a new table */
	MG_OP_FIELD = 'F', /* int32 t, uint64 length, bytes: pop v, t[key] = v */
	MG_OP_INDEX = 'I', /* int32 t, int32 i: pop v, t[i] = v */
	MG_OP_ERROR = 'E'  /* uint64 length, bytes: raise this message */
};
int mg_box_set(mg_buf *b, const char *p, size_t n);

/* MG_ARGS arguments of a Go-backed function are read by the trampoline
 * before it calls Go, so that Go reads them without a cgo call each. s is
 * a string's bytes (Lua's own, valid during the call), num a number or a
 * boolean's truth. */
#define MG_ARGS 8
typedef struct mg_arg {
	const char *s;
	size_t n;
	double num;
	int kind;
} mg_arg;

#endif
