/*
 * lua-magnet.c: the C reference for magnet's benchmark.
 *
 * The classic 2006 lua-magnet design, written from its description:
 * a libfcgi FCGI_Accept() loop, one Lua 5.1 state per process, a chunk
 * cache keyed by SCRIPT_FILENAME and reloaded when the file's mtime
 * changes (one stat per request), and each request running the cached
 * chunk in a fresh environment whose metatable has __index = _G.
 * print() writes its arguments to the response with no separator and
 * no newline. magnet.cache[path] = {mtime = ..., hits = ...}.
 *
 * Build: cc -O2 lua-magnet.c $(pkg-config --cflags --libs lua5.1) -lfcgi
 * Run it the FastCGI way: spawn-fcgi -s SOCKET -F 2 -- ./lua-magnet
 */
#include <fcgi_stdio.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* magnet_print is print() for scripts: tostring() of each argument,
 * written to the response as is. */
static int magnet_print(lua_State *L) {
	int n = lua_gettop(L);
	int i;

	lua_getglobal(L, "tostring");
	for (i = 1; i <= n; i++) {
		const char *s;
		size_t len;

		lua_pushvalue(L, -1);
		lua_pushvalue(L, i);
		lua_call(L, 1, 1);
		s = lua_tolstring(L, -1, &len);
		if (s == NULL)
			return luaL_error(L, "'tostring' must return a string to 'print'");
		FCGI_fwrite((void *)s, 1, len, FCGI_stdout);
		lua_pop(L, 1);
	}
	return 0;
}

static void send_error(int status, const char *msg) {
	FCGI_printf("Status: %d\r\nContent-Type: text/plain\r\n\r\n%s\n", status, msg);
}

/* load_script leaves the compiled chunk for path on the stack, taking it
 * from magnet.cache when the file's mtime is unchanged and counting a
 * hit. It returns 0 on success, else an HTTP status with an error
 * message on the stack. */
static int load_script(lua_State *L, const char *path) {
	struct stat st;

	if (stat(path, &st) != 0) {
		lua_pushstring(L, "not found");
		return 404;
	}
	lua_getglobal(L, "magnet");
	lua_getfield(L, -1, "cache");
	lua_remove(L, -2);                /* cache */
	lua_getfield(L, -1, path);        /* cache, entry */
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "mtime");
		if (lua_tonumber(L, -1) == (lua_Number)st.st_mtime) {
			lua_pop(L, 1);
			lua_getfield(L, -1, "hits");
			lua_pushnumber(L, lua_tonumber(L, -1) + 1);
			lua_setfield(L, -3, "hits");
			lua_pop(L, 1);
			lua_getfield(L, -1, "script");  /* cache, entry, chunk */
			lua_replace(L, -3);
			lua_pop(L, 1);
			return 0;
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);                    /* cache */
	if (luaL_loadfile(L, path) != 0) {
		lua_remove(L, -2);
		return 500;
	}
	lua_newtable(L);                  /* cache, chunk, entry */
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "script");
	lua_pushnumber(L, (lua_Number)st.st_mtime);
	lua_setfield(L, -2, "mtime");
	lua_pushnumber(L, 1);
	lua_setfield(L, -2, "hits");
	lua_setfield(L, -3, path);
	lua_remove(L, -2);
	return 0;
}

int main(void) {
	lua_State *L = luaL_newstate();

	signal(SIGPIPE, SIG_IGN);
	luaL_openlibs(L);
	lua_pushcfunction(L, magnet_print);
	lua_setglobal(L, "print");
	lua_newtable(L);
	lua_newtable(L);
	lua_setfield(L, -2, "cache");
	lua_setglobal(L, "magnet");

	while (FCGI_Accept() >= 0) {
		const char *path = getenv("SCRIPT_FILENAME");
		int status;

		if (path == NULL) {
			send_error(500, "no SCRIPT_FILENAME");
			continue;
		}
		status = load_script(L, path);
		if (status != 0) {
			FCGI_fprintf(FCGI_stderr, "%s: %s\n", path, lua_tostring(L, -1));
			lua_pop(L, 1);
			send_error(status, status == 404 ? "Not Found" : "Internal Server Error");
			continue;
		}
		/* A fresh environment per request: setmetatable({}, {__index = _G}). */
		lua_newtable(L);
		lua_newtable(L);
		lua_pushvalue(L, LUA_GLOBALSINDEX);
		lua_setfield(L, -2, "__index");
		lua_setmetatable(L, -2);
		lua_setfenv(L, -2);
		if (lua_pcall(L, 0, 0, 0) != 0) {
			FCGI_fprintf(FCGI_stderr, "%s: %s\n", path, lua_tostring(L, -1));
			lua_pop(L, 1);
			send_error(500, "Internal Server Error");
		}
	}
	lua_close(L);
	return 0;
}
