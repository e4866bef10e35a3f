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
// functions), setup.c (set-up, the sandbox, making the magnet table) and run.c
// (load, unload, the run, the time limit hook).
//
// # Safety rules of the C side
//
// A Lua error is a longjmp (a C++-style unwind under LuaJIT) to the nearest
// lua_pcall or lua_cpcall. A long-lived state under cgo stays sound only if
// these hold; every C file keeps them.
//
//  1. Protection. Script code runs only under lua_pcall: in mg_run, with
//     mg_msghandler adding the traceback, and in mg_dostring (set-up code,
//     tests). setup runs under lua_cpcall from mg_new, and mg_build_header
//     under lua_cpcall after the run, because header values are script
//     data. luaL_loadbuffer returns its error as a code. What mg_new,
//     mg_load, mg_unload, mg_run and mg_register_go do outside those calls
//     uses only API calls that call no metamethod: raw table access,
//     pushes, references.
//
//  2. Who raises. Only the Lua C functions that scripts call (output.c,
//     body.c, request.c, the replacements in setup.c, the trampoline in
//     gofunc.c), the time limit hook (only while mg_run has set a
//     deadline), setup and mg_build_header raise a Lua error, with
//     lua_error or luaL_error; all of them run inside one of the protected
//     calls above, so the longjmp unwinds C frames only.
//
//  3. No Go frame inside a longjmp. Every protected call is entered from C
//     above the Go caller's frame. C calls Go in two places only:
//     magnetCallGo (gofunc.c's trampoline, for Func) and magnetReadBody
//     (body.c). Neither raises: a Func returns an error, magnetCallGo
//     pushes its message and returns MG_GOERROR, magnetReadBody returns -1,
//     and the C caller raises after the Go call has returned. Both recover
//     Go panics, so a Go panic never unwinds C frames. Call's methods use
//     only API calls that call no metamethod and raise no error of their
//     own.
//
//  4. Stack space. Lua gives a C function LUA_MINSTACK free slots and no
//     more. A function that may push more, for example one value per
//     argument, checks first with luaL_checkstack (read_formats); a
//     Go-backed function is held to the same rule.
//
//  5. No panic handler. magnet sets none, so an error raised outside any
//     protected call reaches golua's default_panicf, which calls abort()
//     and ends the worker. Rules 1 to 3 exist so that this never happens.
//
// Where the code does not keep these rules yet:
//   - mg_run counts hits and mg_unload looks up the cache entry with
//     lua_getfield and lua_setfield on magnet.cache and its entries, which
//     scripts can reach: a metamethod set there runs, and may raise,
//     outside protection (rules 1 and 5).
//   - Any API call that allocates may raise a memory error, or run a __gc
//     finalizer (newproxy) that raises, wherever it is called; from Call's
//     methods that longjmp crosses Go frames (rule 3).
//   - Neither mg_gofunc nor Call checks stack space, and Call has no way
//     to (rule 4); the functions in fs.go push at most two values.
package luabind
