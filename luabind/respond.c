/* respond.c: magnet.exit and magnet.sleep, and the string helpers that run
 * on a request's hot path (escape_html, escape_uri, unescape_uri, hex,
 * base64): in C, so a call costs no cgo crossing. Safety rules: doc.go. */
#include <errno.h>
#include <time.h>
#include "internal.h"
#include "respond.h"

char mg_exit_key;

const char *mg_reason(int status) {
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 418: return "I'm a teapot";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	case 511: return "Network Authentication Required";
	}
	return "";
}

/* magnet.exit([status [, body]]): ends the script. The headers set so far
 * stay; a body replaces what was printed. After a flush the status has
 * gone out already and only the end of the script remains. */
static int mg_exit(lua_State *L) {
	mg_state *S = UPSTATE(L);
	if (!lua_isnoneornil(L, 1)) {
		lua_Number st = luaL_checknumber(L, 1);
		if (!(st >= 100 && st < 1000)) return luaL_error(L, "magnet.exit: %f is not an HTTP status", st);
		if (!S->sent) {
			S->status = (int)st;
			S->structured = 1;
		}
	}
	if (!lua_isnoneornil(L, 2)) {
		size_t n;
		const char *b = luaL_checklstring(L, 2, &n);
		if (!S->sent) S->out.len = 0;
		if (mg_buf_append(&S->out, b, n) != 0) return luaL_error(L, "magnet: out of memory");
	}
	/* the error unwinds past mg_run_protected, which builds the header
	 * block after a normal end: build it here (it may raise) */
	if (S->structured && !S->sent) {
		lua_pushcfunction(L, mg_build_header);
		lua_pushlightuserdata(L, S);
		lua_call(L, 1, 0);
	}
	lua_pushlightuserdata(L, &mg_exit_key);
	return lua_error(L);
}

static int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* magnet.sleep(seconds): blocks the worker, and so every request it
 * holds; a sleep past the script's time limit ends at the limit with its
 * error. */
static int mg_sleep(lua_State *L) {
	mg_state *S = UPSTATE(L);
	lua_Number sec = luaL_checknumber(L, 1);
	if (!(sec >= 0)) return luaL_argerror(L, 1, "a duration in seconds");
	int64_t ns = sec > 1e6 ? (int64_t)1e15 : (int64_t)(sec * 1e9);
	int over = 0;
	if (S->deadline_ns) {
		int64_t left = S->deadline_ns - mono_ns();
		if (left < 0) left = 0;
		if (ns > left) {
			ns = left;
			over = 1;
		}
	}
	struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
	if (over)
		return luaL_error(L, "magnet: script ran longer than its time limit (%d ms)", (int)(S->timeout_ns / 1000000));
	return 0;
}

/* ---- strings ---- */

static int mg_escape_html(lua_State *L) {
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	size_t extra = 0;
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&': extra += 4; break;
		case '<': case '>': extra += 3; break;
		case '"': case '\'': extra += 4; break;
		}
	}
	if (extra == 0) {
		lua_settop(L, 1);
		return 1;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&': luaL_addlstring(&b, "&amp;", 5); break;
		case '<': luaL_addlstring(&b, "&lt;", 4); break;
		case '>': luaL_addlstring(&b, "&gt;", 4); break;
		case '"': luaL_addlstring(&b, "&#34;", 5); break;
		case '\'': luaL_addlstring(&b, "&#39;", 5); break;
		default: luaL_addchar(&b, s[i]);
		}
	}
	luaL_pushresult(&b);
	return 1;
}

static const char hexdig[] = "0123456789ABCDEF";
static const char hexlow[] = "0123456789abcdef";

static int unreserved(unsigned char c) {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

/* magnet.escape_uri(s): percent-encodes every byte but RFC 3986's
 * unreserved characters. */
static int mg_escape_uri(lua_State *L) {
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c)) {
			luaL_addchar(&b, c);
		} else {
			luaL_addchar(&b, '%');
			luaL_addchar(&b, hexdig[c >> 4]);
			luaL_addchar(&b, hexdig[c & 15]);
		}
	}
	luaL_pushresult(&b);
	return 1;
}

/* magnet.unescape_uri(s): decodes %XX; a % not followed by two hex
 * digits stays as it is, and + stays + (magnet.urldecode decodes forms). */
static int mg_unescape_uri(lua_State *L) {
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	mg_push_unescaped(L, s, n, 0);
	return 1;
}

/* magnet.hex(s): lower-case hex of the bytes of s. */
static int mg_hex(lua_State *L) {
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		luaL_addchar(&b, hexlow[c >> 4]);
		luaL_addchar(&b, hexlow[c & 15]);
	}
	luaL_pushresult(&b);
	return 1;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* magnet.base64_encode(s) pads with =; magnet.base64url_encode(s) uses the
 * URL-safe alphabet without padding (RFC 4648 section 5). Upvalue 1 tells
 * which. */
static int mg_b64_encode(lua_State *L) {
	int url = lua_toboolean(L, lua_upvalueindex(1));
	const char *abc = url ? b64url : b64std;
	size_t n;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		luaL_addchar(&b, abc[v >> 18]);
		luaL_addchar(&b, abc[(v >> 12) & 63]);
		luaL_addchar(&b, abc[(v >> 6) & 63]);
		luaL_addchar(&b, abc[v & 63]);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		luaL_addchar(&b, abc[v >> 18]);
		luaL_addchar(&b, abc[(v >> 12) & 63]);
		if (!url) luaL_addlstring(&b, "==", 2);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		luaL_addchar(&b, abc[v >> 18]);
		luaL_addchar(&b, abc[(v >> 12) & 63]);
		luaL_addchar(&b, abc[(v >> 6) & 63]);
		if (!url) luaL_addchar(&b, '=');
	}
	luaL_pushresult(&b);
	return 1;
}

static int b64val(unsigned char c, int url) {
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == (url ? '-' : '+')) return 62;
	if (c == (url ? '_' : '/')) return 63;
	return -1;
}

/* magnet.base64_decode(s) / magnet.base64url_decode(s): the bytes, or
 * nil and a message for input that is not base64. Padding is optional. */
static int mg_b64_decode(lua_State *L) {
	int url = lua_toboolean(L, lua_upvalueindex(1));
	size_t n;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
	while (n > 0 && s[n - 1] == '=') n--;
	if (n % 4 == 1) goto bad;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	uint32_t v = 0;
	int k = 0;
	for (size_t i = 0; i < n; i++) {
		int d = b64val(s[i], url);
		if (d < 0) goto bad;
		v = v << 6 | (uint32_t)d;
		if (++k == 4) {
			luaL_addchar(&b, (char)(v >> 16));
			luaL_addchar(&b, (char)(v >> 8));
			luaL_addchar(&b, (char)v);
			v = 0;
			k = 0;
		}
	}
	if (k == 2) {
		luaL_addchar(&b, (char)(v >> 4));
	} else if (k == 3) {
		luaL_addchar(&b, (char)(v >> 10));
		luaL_addchar(&b, (char)(v >> 2));
	}
	luaL_pushresult(&b);
	return 1;
bad:
	lua_pushnil(L);
	lua_pushliteral(L, "invalid base64 input");
	return 2;
}

/* ---- installing ---- */

static void set_fn(lua_State *L, mg_state *S, const char *name, lua_CFunction f) {
	lua_pushlightuserdata(L, S);
	lua_pushcclosure(L, f, 1);
	lua_setfield(L, -2, name);
}

static int batteries_protected(lua_State *L) {
	mg_state *S = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, S->magnet_ref);
	set_fn(L, S, "exit", mg_exit);
	set_fn(L, S, "sleep", mg_sleep);
	set_fn(L, S, "escape_html", mg_escape_html);
	set_fn(L, S, "escape_uri", mg_escape_uri);
	set_fn(L, S, "unescape_uri", mg_unescape_uri);
	set_fn(L, S, "hex", mg_hex);
	static const struct {
		const char *name;
		lua_CFunction f;
		int url;
	} b64[] = {
		{"base64_encode", mg_b64_encode, 0},
		{"base64_decode", mg_b64_decode, 0},
		{"base64url_encode", mg_b64_encode, 1},
		{"base64url_decode", mg_b64_decode, 1},
	};
	for (size_t i = 0; i < sizeof b64 / sizeof b64[0]; i++) {
		lua_pushboolean(L, b64[i].url);
		lua_pushcclosure(L, b64[i].f, 1);
		lua_setfield(L, -2, b64[i].name);
	}
	return 0;
}

int mg_batteries(mg_state *S) {
	int rc = lua_cpcall(S->L, batteries_protected, S);
	if (rc != 0) {
		mg_capture_error(S->L, S);
		lua_pop(S->L, 1);
	}
	return rc;
}
