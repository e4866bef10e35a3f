/* gofunc.c: Lua functions implemented in Go (gofunc.go), called through
 * one C trampoline. Safety rules: doc.go. */
#include "internal.h"
#include "_cgo_export.h"

/* A result box is a userdata holding the encoded results of one nested
 * Go call (a __gc finalizer run by a push of another call's results). It
 * lives on the Lua stack while C pushes the results, so an error raised by
 * a push leaves the buffer to the collector. */
static int box_gc(lua_State *L) {
	mg_buf *b = lua_touserdata(L, 1);
	if (b) {
		free(b->p);
		b->p = NULL;
		b->len = b->cap = 0;
	}
	return 0;
}

/* mg_box_metatable makes the metatable of result boxes (in setup). */
void mg_box_metatable(lua_State *L, mg_state *S) {
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, box_gc);
	lua_setfield(L, -2, "__gc");
	S->box_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* reader walks a result box. */
typedef struct reader {
	const char *p, *end;
} reader;

static int rd(reader *r, void *v, size_t n) {
	if ((size_t)(r->end - r->p) < n) return -1;
	memcpy(v, r->p, n);
	r->p += n;
	return 0;
}

static int rd_str(reader *r, const char **s, size_t *n) {
	uint64_t len;
	if (rd(r, &len, 8) != 0 || (uint64_t)(r->end - r->p) < len) return -1;
	*s = r->p;
	*n = (size_t)len;
	r->p += len;
	return 0;
}

/* mg_box_set copies a Go call's encoded results into its box. */
int mg_box_set(mg_buf *b, const char *p, size_t n) {
	b->len = 0;
	return mg_buf_append(b, p, n);
}

/* set_target checks that t is a table the function may store into: an
 * argument or one of its results, not the box, and below the value. base
 * is the last slot below the results (the box, or the last argument). */
static int set_target(lua_State *L, int base, int box, int32_t t) {
	int top = lua_gettop(L);
	int abs = t > 0 ? t : top + 1 + t;
	if (top <= base || abs < 1 || abs >= top || (box && abs == box) || !lua_istable(L, abs)) return 0;
	return abs;
}

/* fail raises msg after releasing the state's result buffer. */
static int fail(lua_State *L, mg_state *S, int box, const char *msg) {
	if (!box) S->gores_busy = 0;
	return luaL_error(L, "%s", msg);
}

/* replay pushes the results encoded in b above base. box is the index of
 * the call's own result box, or 0 when b is the state's gores, which is
 * released before any error is raised (a memory error in a push leaves it
 * busy until the next run, and calls meanwhile take boxes). */
static int replay(lua_State *L, mg_state *S, int base, int box, mg_buf *b, int ret) {
	reader r = {b->p, b->p + b->len};
	int left = 0; /* ops that the last stack check made room for */
	while (r.p < r.end) {
		char op = *r.p++;
		const char *s;
		size_t n;
		int32_t t, i;
		/* at most two slots per op (FIELD pushes its key): room for
		 * eight ops at a time */
		if (--left < 0) {
			if (!lua_checkstack(L, 16)) return fail(L, S, box, "stack overflow (too many results from a Go function)");
			left = 7;
		}
		switch (op) {
		case MG_OP_NIL:
			lua_pushnil(L);
			break;
		case MG_OP_BOOL: {
			char v;
			if (rd(&r, &v, 1) != 0) goto bad;
			lua_pushboolean(L, v);
			break;
		}
		case MG_OP_NUM: {
			double v;
			if (rd(&r, &v, sizeof v) != 0) goto bad;
			lua_pushnumber(L, (lua_Number)v);
			break;
		}
		case MG_OP_STR:
		case MG_OP_ERROR:
			if (rd_str(&r, &s, &n) != 0) goto bad;
			lua_pushlstring(L, s, n);
			if (op == MG_OP_ERROR) {
				if (!box) S->gores_busy = 0;
				return lua_error(L);
			}
			break;
		case MG_OP_TABLE: {
			int32_t narr, nrec;
			if (rd(&r, &narr, 4) != 0 || rd(&r, &nrec, 4) != 0 || narr < 0 || nrec < 0) goto bad;
			lua_createtable(L, narr, nrec);
			break;
		}
		case MG_OP_FIELD:
			if (rd(&r, &t, 4) != 0 || rd_str(&r, &s, &n) != 0) goto bad;
			if (!(t = set_target(L, base, box, t))) goto bad;
			lua_pushlstring(L, s, n);
			lua_insert(L, -2);
			lua_rawset(L, t);
			break;
		case MG_OP_INDEX:
			if (rd(&r, &t, 4) != 0 || rd(&r, &i, 4) != 0) goto bad;
			if (!(t = set_target(L, base, box, t))) goto bad;
			lua_rawseti(L, t, i);
			break;
		default:
			goto bad;
		}
	}
	if (!box) S->gores_busy = 0;
	if (ret == MG_GOERROR) return luaL_error(L, "Go function failed without a message");
	if (ret < 0 || ret > lua_gettop(L) - base) return luaL_error(L, "Go function returned %d values but pushed %d", ret, lua_gettop(L) - base);
	return ret;
bad:
	return fail(L, S, box, "Go function: bad result encoding");
}

/* read_args reads the first MG_ARGS arguments for Go, with calls that
 * neither allocate nor raise (a number is not converted to a string). */
static int read_args(lua_State *L, int nargs, mg_arg *args) {
	int n = nargs < MG_ARGS ? nargs : MG_ARGS;
	for (int i = 0; i < n; i++) {
		mg_arg *a = &args[i];
		a->kind = lua_type(L, i + 1);
		a->s = NULL;
		a->n = 0;
		a->num = 0;
		switch (a->kind) {
		case LUA_TSTRING:
			a->s = lua_tolstring(L, i + 1, &a->n);
			break;
		case LUA_TNUMBER:
			a->num = (double)lua_tonumber(L, i + 1);
			break;
		case LUA_TBOOLEAN:
			a->num = lua_toboolean(L, i + 1);
			break;
		}
	}
	return n;
}

/* mg_gofunc calls a Go function. Go reads its arguments without raising
 * and encodes its results (or its error) into a C buffer; C pushes them,
 * and raises, after every Go frame has returned. The buffer is the
 * state's gores, unless C is pushing from it already (this call comes
 * from a __gc finalizer that one of those pushes ran): then it is a result
 * box, a userdata of the call's own that the collector frees. */
static int mg_gofunc(lua_State *L) {
	mg_state *S = UPSTATE(L);
	int id = (int)lua_tointeger(L, lua_upvalueindex(2));
	int nargs = lua_gettop(L);
	mg_arg args[MG_ARGS];
	int nread = read_args(L, nargs, args);
	if (!S->gores_busy) {
		mg_buf *b = &S->gores;
		b->len = 0;
		int ret = magnetCallGo(S->handle, L, id, nargs, args, nread, b);
		S->gores_busy = 1;
		return replay(L, S, nargs, 0, b, ret);
	}
	luaL_checkstack(L, 1, "too many arguments");
	mg_buf *b = lua_newuserdata(L, sizeof *b);
	memset(b, 0, sizeof *b);
	int box = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->box_mt_ref);
	lua_setmetatable(L, box);
	int ret = magnetCallGo(S->handle, L, id, nargs, args, nread, b);
	return replay(L, S, box, box, b, ret);
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

typedef struct register_args {
	mg_state *S;
	const char *table, *name;
	int id;              /* a Go function's, or -1 for cfn */
	lua_CFunction cfn;
} register_args;

static int register_protected(lua_State *L) {
	register_args *a = lua_touserdata(L, 1);
	find_table(L, a->table);
	lua_pushstring(L, a->name);
	if (a->id < 0) {
		lua_pushcfunction(L, a->cfn);
	} else {
		lua_pushlightuserdata(L, a->S);
		lua_pushinteger(L, a->id);
		lua_pushcclosure(L, mg_gofunc, 2);
	}
	lua_rawset(L, -3);
	return 0;
}

static int register_fn(register_args *a) {
	int rc = lua_cpcall(a->S->L, register_protected, a);
	if (rc != 0) {
		mg_capture_error(a->S->L, a->S);
		lua_pop(a->S->L, 1);
	}
	return rc;
}

/* mg_register_go sets table.name (table a dotted global path, made when
 * missing) to a trampoline to Go function id. Returns a lua_cpcall code. */
int mg_register_go(mg_state *S, const char *table, const char *name, int id) {
	register_args a = {S, table, name, id, NULL};
	return register_fn(&a);
}

/* mg_register_rows sets table.name to mg_rows_fetch (rows.c), as
 * mg_register_go does for Go functions. */
int mg_register_rows(mg_state *S, const char *table, const char *name) {
	register_args a = {S, table, name, -1, mg_rows_fetch};
	return register_fn(&a);
}
