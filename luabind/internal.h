/* internal.h: what the C files of luabind share and Go does not see.
 * magnet.h is the Go-facing API; this header adds the helpers and the
 * Lua functions that one file defines and another installs.
 *
 * The safety rules of the C side are in doc.go; every file keeps them. */
#ifndef MAGNET_INTERNAL_H
#define MAGNET_INTERNAL_H

#include <stdlib.h>
#include <string.h>
#include "magnet.h"

/* UPSTATE is the mg_state of a closure made with it as upvalue 1. */
#define UPSTATE(L) ((mg_state *)lua_touserdata((L), lua_upvalueindex(1)))

/* Byte buffers. Inline: print and io.write append on every call. */

static inline int mg_buf_reserve(mg_buf *b, size_t extra) {
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

static inline int mg_buf_append(mg_buf *b, const char *s, size_t n) {
	if (mg_buf_reserve(b, n) != 0) return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

/* mg_buf_shrink frees a buffer that one large request grew past 4 MiB. */
static inline void mg_buf_shrink(mg_buf *b) {
	if (b->cap > (4u << 20)) {
		free(b->p);
		b->p = NULL;
		b->len = b->cap = 0;
	}
}

static inline void mg_buf_set(mg_buf *b, const char *s, size_t n) {
	b->len = 0;
	mg_buf_append(b, s, n);
}

/* output.c: print, io.write and io.stdout over S->out. */
int mg_print(lua_State *L);
int mg_io_write(lua_State *L);
int mg_stdout_write(lua_State *L);
int mg_noop_self(lua_State *L);
int mg_stdout_flush(lua_State *L);
int mg_magnet_flush(lua_State *L);
void mg_flush(lua_State *L, mg_state *S, const char *more, size_t n);

/* body.c: the request body, read from Go only when a script asks. */
int mg_io_read(lua_State *L);
int mg_stdin_read(lua_State *L);
int mg_io_lines(lua_State *L);
int mg_stdin_lines(lua_State *L);
int mg_request_body(lua_State *L);

/* request.c: params, os.getenv, magnet.request and the magnet table's
 * per-request fields. */
int mg_getenv(lua_State *L);
int mg_magnet_index(lua_State *L);
int mg_request_index(lua_State *L);
int mg_urldecode(lua_State *L);
int mg_parse_query(lua_State *L);
void mg_push_unescaped(lua_State *L, const char *s, size_t n, int plus);
int mg_rows_fetch(lua_State *L);
int mg_magnet_newindex(lua_State *L);

/* headers.c: the CGI header block of a structured response. */
int mg_build_header(lua_State *L);

/* errors.c: the message handler of a run, and error text for Go. */
int mg_msghandler(lua_State *L);
void mg_capture_error(lua_State *L, mg_state *S);
void mg_guard_finalizers(lua_State *L, mg_state *S);

/* run.c: the registry key of the mg_state, for the time limit hook, and
 * the protected body of a run. */
extern char mg_hook_key;
int mg_run_protected(lua_State *L);

/* gofunc.c: the metatable of the boxes that carry a Go call's results. */
void mg_box_metatable(lua_State *L, mg_state *S);

/* setup.c: the counting allocator and the panic handler. */
void *mg_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
