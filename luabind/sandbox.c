/* sandbox.c: --sandbox for shared hosts. It takes away what reaches past
 * the script's own files (os.execute, io.popen, package.loadlib, the debug
 * library but traceback, LuaJIT's ffi, C modules outside an allow-list,
 * binary chunks) and confines the functions that open files by name to the
 * open_basedir directories: the path is resolved with realpath(3), then
 * compared with each directory by whole path components, and the function
 * gets the resolved path, so a symlink swapped in after the check is not
 * followed. Every function here is a Lua C function that may raise; they
 * run inside the protected calls of doc.go and call no Go. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include "internal.h"

/* Upvalues of a guard: 1 the basedir table (resolved directories, a
 * sequence), 2 the original function. */
#define UP_DIRS lua_upvalueindex(1)
#define UP_ORIG lua_upvalueindex(2)

/* under reports whether the resolved path p is dir or inside it. */
static int under(const char *p, const char *dir, size_t n) {
	if (n == 1 && dir[0] == '/') return 1;
	return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* resolve puts the real path of path into out; a missing last component
 * (a file about to be created) is resolved through its directory. */
static int resolve(const char *path, char *out) {
	if (realpath(path, out) != NULL) return 0;
	if (errno != ENOENT) return -1;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char dir[PATH_MAX];
	if (slash == path) strcpy(dir, "/");
	else if (slash == NULL) strcpy(dir, ".");
	else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir) return -1;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) return -1;
	char real[PATH_MAX];
	if (realpath(dir, real) == NULL) return -1;
	size_t rl = strlen(real);
	if (rl + 1 + strlen(base) >= PATH_MAX) return -1;
	strcpy(out, real);
	if (rl > 1) out[rl++] = '/';
	strcpy(out + rl, base);
	return 0;
}

/* checked_path raises unless the string at idx names a file under a
 * basedir; it replaces the argument with the resolved path. */
static void checked_path(lua_State *L, int idx, const char *fname) {
	const char *path = luaL_checkstring(L, idx);
	char real[PATH_MAX];
	if (resolve(path, real) == 0) {
		int n = (int)lua_objlen(L, UP_DIRS);
		for (int i = 1; i <= n; i++) {
			lua_rawgeti(L, UP_DIRS, i);
			size_t dl;
			const char *dir = lua_tolstring(L, -1, &dl); /* strings only: no conversion */
			int ok = under(real, dir, dl);
			lua_pop(L, 1);
			if (ok) {
				lua_pushstring(L, real);
				lua_replace(L, idx);
				return;
			}
		}
	}
	luaL_error(L, "%s: %s is outside --open-basedir (sandbox)", fname, path);
}

/* call_orig calls the original function with the (checked) arguments. */
static int call_orig(lua_State *L) {
	int n = lua_gettop(L);
	lua_pushvalue(L, UP_ORIG);
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

/* io.open(path, mode), io.lines(path), os.remove(path), io.input(path),
 * io.output(path): the first argument, when a string, is checked. */
static int guard_first(lua_State *L) {
	if (lua_type(L, 1) == LUA_TSTRING) checked_path(L, 1, "file access");
	return call_orig(L);
}

/* os.rename(from, to) */
static int guard_both(lua_State *L) {
	checked_path(L, 1, "os.rename");
	checked_path(L, 2, "os.rename");
	return call_orig(L);
}

/* loadfile(path), dofile(path): no path (stdin is the listening socket
 * here) and no binary chunk, which Lua 5.1 does not verify. */
static int guard_chunkfile(lua_State *L) {
	if (lua_isnoneornil(L, 1)) return luaL_error(L, "loading from stdin is not allowed (sandbox)");
	checked_path(L, 1, "loadfile");
	FILE *f = fopen(lua_tostring(L, 1), "rb");
	if (f != NULL) {
		int c = getc(f);
		fclose(f);
		if (c == LUA_SIGNATURE[0]) return luaL_error(L, "loadfile: binary chunks are not allowed (sandbox)");
	}
	return call_orig(L);
}

/* loadstring(s): text only. */
static int guard_loadstring(lua_State *L) {
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	if (n > 0 && s[0] == LUA_SIGNATURE[0]) return luaL_error(L, "loadstring: binary chunks are not allowed (sandbox)");
	return call_orig(L);
}

/* refused replaces a function the sandbox takes away; upvalue 1 is its
 * name. */
static int refused(lua_State *L) {
	return luaL_error(L, "%s is not allowed (sandbox)", lua_tostring(L, lua_upvalueindex(1)));
}

/* C module loaders (package.loaders[3] and [4]): upvalue 1 is the set of
 * allowed module names, 2 the original loader. The croot loader asks
 * for "a.b"'s root "a": the full name is checked either way. */
static int guard_cloader(lua_State *L) {
	const char *name = luaL_checkstring(L, 1);
	lua_getfield(L, lua_upvalueindex(1), name);
	int ok = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if (!ok) {
		lua_pushfstring(L, "\n\tno C module '%s' (sandbox: not in --allow-module)", name);
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

/* lua_loader replaces package.loaders[2]: package.path searched as Lua
 * does, but a file found outside the basedirs is skipped. Upvalue 1: the
 * basedir table; 2: the package table. */
static int lua_loader(lua_State *L) {
	const char *name = luaL_checkstring(L, 1);
	lua_getfield(L, lua_upvalueindex(2), "path");
	const char *path = lua_tostring(L, -1);
	if (path == NULL) return luaL_error(L, "package.path must be a string");
	name = luaL_gsub(L, name, ".", "/");
	luaL_Buffer tried;
	luaL_buffinit(L, &tried);
	/* stack: name, path, dotted name; tried is built on top */
	const char *p = path;
	while (*p) {
		const char *e = strchr(p, ';');
		if (e == NULL) e = p + strlen(p);
		if (e > p) {
			lua_pushlstring(L, p, (size_t)(e - p));
			const char *file = luaL_gsub(L, lua_tostring(L, -1), "?", name);
			lua_remove(L, -2);
			FILE *f = fopen(file, "r");
			if (f != NULL) {
				fclose(f);
				char real[PATH_MAX];
				int ok = 0;
				if (realpath(file, real) != NULL) {
					int n = (int)lua_objlen(L, lua_upvalueindex(1));
					for (int i = 1; i <= n && !ok; i++) {
						lua_rawgeti(L, lua_upvalueindex(1), i);
						size_t dl;
						const char *dir = lua_tolstring(L, -1, &dl);
						ok = under(real, dir, dl);
						lua_pop(L, 1);
					}
				}
				if (ok) {
					int c = -1;
					if ((f = fopen(real, "rb")) != NULL) {
						c = getc(f);
						fclose(f);
					}
					if (c == LUA_SIGNATURE[0]) return luaL_error(L, "module '%s': binary chunks are not allowed (sandbox)", lua_tostring(L, 1));
					if (luaL_loadfile(L, real) != 0)
						return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", lua_tostring(L, 1), real, lua_tostring(L, -1));
					return 1;
				}
				lua_pushfstring(L, "\n\tno file '%s' (outside --open-basedir)", file);
			} else {
				lua_pushfstring(L, "\n\tno file '%s'", file);
			}
			lua_remove(L, -2); /* the file name */
			luaL_addvalue(&tried);
		}
		p = *e ? e + 1 : e;
	}
	luaL_pushresult(&tried);
	return 1;
}

/* wrap sets t[name] to a guard over its current value. */
static void wrap(lua_State *L, int t, const char *name, lua_CFunction guard, int dirs) {
	lua_getfield(L, t, name);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_pushvalue(L, dirs);
	lua_insert(L, -2);
	lua_pushcclosure(L, guard, 2);
	lua_setfield(L, t, name);
}

static void refuse(lua_State *L, int t, const char *name, const char *full) {
	lua_pushstring(L, full);
	lua_pushcclosure(L, refused, 1);
	lua_setfield(L, t, name);
}

typedef struct sandbox_args {
	const char *dirs, *mods; /* each a list of NUL-terminated strings, ended by an empty one */
} sandbox_args;

static int sandbox_protected(lua_State *L) {
	sandbox_args *a = lua_touserdata(L, 1);
	lua_settop(L, 0);

	lua_newtable(L); /* 1: basedirs, resolved */
	int n = 0;
	for (const char *d = a->dirs; *d; d += strlen(d) + 1) {
		char real[PATH_MAX];
		if (realpath(d, real) == NULL) return luaL_error(L, "--open-basedir %s: %s", d, strerror(errno));
		size_t l = strlen(real);
		while (l > 1 && real[l - 1] == '/') real[--l] = '\0';
		lua_pushstring(L, real);
		lua_rawseti(L, 1, ++n);
	}
	lua_newtable(L); /* 2: allowed C modules */
	for (const char *m = a->mods; *m; m += strlen(m) + 1) {
		lua_pushboolean(L, 1);
		lua_setfield(L, 2, m);
	}

	lua_getglobal(L, "os"); /* 3 */
	refuse(L, 3, "execute", "os.execute");
	wrap(L, 3, "remove", guard_first, 1);
	wrap(L, 3, "rename", guard_both, 1);
	lua_getglobal(L, "io"); /* 4 */
	refuse(L, 4, "popen", "io.popen");
	wrap(L, 4, "open", guard_first, 1);
	wrap(L, 4, "lines", guard_first, 1);
	wrap(L, 4, "input", guard_first, 1);
	wrap(L, 4, "output", guard_first, 1);
	wrap(L, LUA_GLOBALSINDEX, "loadfile", guard_chunkfile, 1);
	wrap(L, LUA_GLOBALSINDEX, "dofile", guard_chunkfile, 1);
	wrap(L, LUA_GLOBALSINDEX, "loadstring", guard_loadstring, 1);

	/* debug: traceback only, in _G and package.loaded */
	lua_createtable(L, 0, 1); /* 5 */
	lua_getglobal(L, "debug");
	if (lua_istable(L, -1)) lua_getfield(L, -1, "traceback");
	else lua_pushnil(L);
	lua_setfield(L, 5, "traceback");
	lua_pop(L, 1);
	lua_pushvalue(L, 5);
	lua_setglobal(L, "debug");

	lua_getglobal(L, "package"); /* 6 */
	if (lua_istable(L, 6)) {
		refuse(L, 6, "loadlib", "package.loadlib");
		lua_getfield(L, 6, "loaded"); /* 7 */
		if (lua_istable(L, 7)) {
			lua_pushvalue(L, 5);
			lua_setfield(L, 7, "debug");
			/* LuaJIT: ffi calls any C function, jit.util reads bytecode */
			static const char *const gone[] = {"ffi", "jit.util", "jit.profile", NULL};
			for (int i = 0; gone[i]; i++) {
				lua_pushnil(L);
				lua_setfield(L, 7, gone[i]);
			}
		}
		lua_pop(L, 1);
		lua_getfield(L, 6, "preload");
		if (lua_istable(L, -1)) {
			static const char *const gone[] = {"ffi", "jit.util", "jit.profile", NULL};
			for (int i = 0; gone[i]; i++) {
				lua_pushnil(L);
				lua_setfield(L, -2, gone[i]);
			}
		}
		lua_pop(L, 1);
		lua_getfield(L, 6, "loaders"); /* 7 */
		if (lua_istable(L, 7)) {
			lua_pushvalue(L, 1);
			lua_pushvalue(L, 6);
			lua_pushcclosure(L, lua_loader, 2);
			lua_rawseti(L, 7, 2);
			for (int i = 3; i <= 4; i++) {
				lua_rawgeti(L, 7, i);
				if (lua_isnil(L, -1)) {
					lua_pop(L, 1);
					continue;
				}
				lua_pushvalue(L, 2);
				lua_insert(L, -2);
				lua_pushcclosure(L, guard_cloader, 2);
				lua_rawseti(L, 7, i);
			}
		}
		lua_pop(L, 1);
	}
	/* load(f): the pieces are joined and go through the checked loadstring */
	luaL_loadstring(L,
		"local loadstring, concat = loadstring, table.concat\n"
		"load = function(f, name)\n"
		"  if type(f) == 'string' then return loadstring(f, name) end\n"
		"  local t = {}\n"
		"  while true do\n"
		"    local p = f()\n"
		"    if p == nil or p == '' then break end\n"
		"    if type(p) ~= 'string' then return nil, 'reader function must return a string' end\n"
		"    t[#t + 1] = p\n"
		"  end\n"
		"  return loadstring(concat(t), name or '=(load)')\n"
		"end\n");
	lua_call(L, 0, 0);
	return 0;
}

/* mg_sandbox applies the sandbox; dirs and mods are lists of
 * NUL-terminated strings ended by an empty one. Returns a lua_cpcall code,
 * the error text in S->err. */
int mg_sandbox(mg_state *S, const char *dirs, const char *mods) {
	sandbox_args a = {dirs, mods};
	int rc = lua_cpcall(S->L, sandbox_protected, &a);
	if (rc != 0) {
		mg_capture_error(S->L, S);
		lua_pop(S->L, 1);
	}
	return rc;
}
