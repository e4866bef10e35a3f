// Package luabind is the Lua side of magnet: one long-lived C Lua 5.1 state
// per worker, the lua-magnet API (print, os.getenv, io over the request,
// magnet.cache, _G persistence) and the structured magnet.* API.
//
// The per-request path is written in C so that a request costs one cgo
// call. magnet.h is the API Go calls; internal.h is what the C files share.
// Each C file holds one concern: output.c (print, io.write), body.c (the
// request body, io.read), request.c (params, os.getenv, magnet.request,
// magnet.status and magnet.header), headers.c (the CGI header block),
// errors.c (message handler, error text), gofunc.c (the trampoline to Go
// functions), setup.c (set-up, the sandbox, making the magnet table),
// modules.c (package.path, and the file each module came from, for
// reloading), run.c (load, unload, the run, the time limit hook) and
// numfmt.c (PUC Lua's number-to-string conversion: the executable's
// __sprintf_chk, which liblua calls, writes integers itself). The
// multipart form behind magnet.request.post and .files is parsed in Go
// (multipart.go), a Go function that reads the body itself.
//
// # Safety rules of the C side
//
// A Lua error is a longjmp (a C++-style unwind under LuaJIT) to the nearest
// lua_pcall or lua_cpcall. A long-lived state under cgo stays sound only if
// these hold; every C file keeps them.
//
//  1. Protection. Everything that may raise runs under lua_pcall or
//     lua_cpcall, entered from C: mg_run calls mg_run_protected (the hit
//     count, the fresh environment, then the script) under one lua_pcall
//     with mg_msghandler, and mg_build_header under another; mg_load,
//     mg_unload, mg_register_go and setup (from mg_new) run their bodies
//     under lua_cpcall; mg_dostring runs set-up code under lua_pcall. A
//     table write raises too, through its metamethods or a memory error,
//     or through a __gc finalizer run by the allocation: so even raw
//     access to magnet.cache and its entries (which scripts can reach)
//     happens inside those calls. What remains outside is what cannot
//     raise: pushing registry values and light userdata, lua_settop,
//     lua_replace, luaL_unref (setup makes the registry's free-list key,
//     so an unref only overwrites existing keys) and reading values;
//     mg_capture_error copies error values without converting them.
//
//  2. Who raises. The Lua C functions that scripts call, the time limit
//     hook, the allocator (a memory error) and set-up code raise a Lua
//     error; all of them run inside one of the protected calls above, so
//     the longjmp unwinds C frames only.
//
//  3. No Go frame inside a longjmp. C calls Go in three places only:
//     magnetCallGo (gofunc.c's trampoline, for Func), magnetReadBody
//     (body.c) and magnetFlush (output.c, the response's writer). The
//     last two return a code only; C raises after they returned (a body
//     over its limit, a client gone). Go never calls a Lua function that can raise: Call reads
//     arguments with calls that neither allocate nor call metamethods
//     (a number is formatted in C, not converted with lua_tolstring), and
//     it does not push results: it encodes them (MG_OP_* in magnet.h) into
//     a C buffer, the state's gores (or, for a call that a finalizer made
//     while C pushed from gores, a result box: a userdata that mg_gofunc
//     made before the call), and C pushes them after Go has returned. The
//     trampoline reads the first arguments for Go beforehand. An error is
//     the last encoded op, raised by C. Both Go functions recover Go
//     panics first, so a Go panic never unwinds C frames.
//
//  4. Stack space. Lua gives a C function LUA_MINSTACK free slots and no
//     more. A function that may push more, for example one value per
//     argument, checks first with luaL_checkstack (read_formats, and the
//     trampoline before each result it pushes: a Go function returning
//     100,000 values is a Lua error).
//
//  5. Panic handler. mg_new replaces golua's default_panicf (which calls
//     abort()) with mg_panic, which logs and exits with status 70. Rules 1
//     to 3 exist so that it never runs.
//
//  6. Memory. mg_alloc counts the heap and allocates through LuaJIT's own
//     allocator, or under PUC Lua through realloc and free with small
//     blocks kept on free lists of the state; past the limit it refuses
//     to grow it, which is a Lua memory error. Frees and shrinks always
//     pass. A run that hit the limit fails, and a full collection follows
//     under lua_cpcall with the limit lifted; a state that still fills the
//     limit is unsound.
//
//  7. Finalizers. A __gc finalizer runs in whatever code an allocation
//     triggers a collection step from, which may be a later request. So
//     newproxy is replaced (errors.c): a function stored as __gc in the
//     metatable of newproxy(true) is wrapped to run under lua_pcall, and
//     its error is counted, logged by Run and otherwise ignored. LuaJIT
//     2.1 before 2023 rethrows a finalizer's error from the collection
//     step, which crashes the process when that step ran on a JIT trace
//     exit; the wrapped finalizers never raise.
//
// What the rules do not cover: a finalizer put in place with rawset,
// reassigned after the first, or set with debug.setmetatable (or
// LuaJIT's ffi.gc) is not wrapped and delivers its error to whatever Lua
// code runs the collection, as in any Lua 5.1 program; the debug library
// (debug.getregistry, debug.setmetatable) reaches everything, and only the
// sandbox can take it away.
package luabind
