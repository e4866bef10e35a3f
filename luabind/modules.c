/* modules.c: package.path and package.cpath, and the Lua file loader
 * (package.loaders[2]) wrapped so that Go learns which file each module
 * came from and can drop it from package.loaded when the file changes.
 * Safety rules: doc.go. */
#include <stdio.h>
#include <sys/stat.h>
#include "internal.h"
#include "modules.h"

/* track_loader calls the loader it wraps (upvalue 2) and, when that gives
 * a chunk loaded from a file, notes the module's name and file in the
 * mg_modules (upvalue 1). */
static int track_loader(lua_State *L) {
	mg_modules *M = lua_touserdata(L, lua_upvalueindex(1));
	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	if (lua_isfunction(L, -1) && !lua_iscfunction(L, -1)) {
		lua_Debug ar;
		lua_pushvalue(L, -1);
		if (lua_getinfo(L, ">S", &ar) && ar.source && ar.source[0] == '@') {
			/* the file as it was loaded, so that Go, watching it only
			 * later, sees a change made in between */
			const char *name = lua_tostring(L, 1), *file = ar.source + 1;
			struct stat sb;
			char id[96] = "";
			if (stat(file, &sb) == 0)
				snprintf(id, sizeof id, "%lld.%09ld:%lld:%llu", (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec,
				         (long long)sb.st_size, (unsigned long long)sb.st_ino);
			if (mg_buf_append(&M->loaded, name, strlen(name) + 1) != 0 ||
			    mg_buf_append(&M->loaded, file, strlen(file) + 1) != 0 ||
			    mg_buf_append(&M->loaded, id, strlen(id) + 1) != 0)
				return luaL_error(L, "out of memory");
		}
	}
	return 1;
}

typedef struct setup_args {
	mg_modules *M;
	const char *path, *cpath;
} setup_args;

/* prepend sets package[field] = more .. ";" .. package[field]. */
static void prepend(lua_State *L, int pkg, const char *field, const char *more) {
	if (more == NULL || *more == '\0') return;
	lua_getfield(L, pkg, field);
	const char *old = lua_tostring(L, -1);
	if (old == NULL) old = "";
	lua_pushfstring(L, "%s;%s", more, old);
	lua_setfield(L, pkg, field);
	lua_pop(L, 1);
}

static int setup_protected(lua_State *L) {
	setup_args *a = lua_touserdata(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
	lua_getfield(L, -1, "package");
	int pkg = lua_gettop(L);
	if (!lua_istable(L, pkg)) return luaL_error(L, "no package library");
	prepend(L, pkg, "path", a->path);
	prepend(L, pkg, "cpath", a->cpath);
	lua_getfield(L, pkg, "loaders");
	if (!lua_istable(L, -1)) return luaL_error(L, "no package.loaders");
	lua_pushlightuserdata(L, a->M);
	lua_rawgeti(L, -2, 2);
	lua_pushcclosure(L, track_loader, 2);
	lua_rawseti(L, -2, 2);
	return 0;
}

/* mg_modules_setup prepends path and cpath (empty: unchanged) to
 * package.path and package.cpath and wraps the Lua file loader. Call it
 * after mg_sandbox, whose loader it then wraps. Returns a lua_cpcall code. */
int mg_modules_setup(mg_state *S, mg_modules *M, const char *path, const char *cpath) {
	setup_args a = {M, path, cpath};
	int rc = lua_cpcall(S->L, setup_protected, &a);
	if (rc != 0) {
		mg_capture_error(S->L, S);
		lua_pop(S->L, 1);
	}
	return rc;
}

static int unload_protected(lua_State *L) {
	const char *names = lua_touserdata(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
	for (const char *p = names; *p; p += strlen(p) + 1) {
		lua_pushnil(L);
		lua_setfield(L, -2, p);
	}
	return 0;
}

/* mg_modules_unload drops each of names ("a\0b\0\0") from package.loaded,
 * so that the next require loads the module's file again. */
int mg_modules_unload(mg_state *S, const char *names) {
	int rc = lua_cpcall(S->L, unload_protected, (void *)names);
	if (rc != 0) {
		mg_capture_error(S->L, S);
		lua_pop(S->L, 1);
	}
	return rc;
}
