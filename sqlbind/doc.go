// Package sqlbind gives scripts SQL on database/sql with LuaSQL's API:
// the global luasql (and require "luasql.mysql", "luasql.postgres",
// "luasql.sqlite3"), environments, connections, cursors, and beyond LuaSQL
// placeholders, prepared statements and typed values.
//
// It lives outside luabind so that luabind stays a leaf free of database
// drivers; it binds its functions through luabind's Go functions, which
// never push from Go (luabind/doc.go). The Lua objects are tables built by
// luasql.lua; each holds an integer handle into the binding's table of Go
// objects, freed by close() or by a finalizer.
//
// A cursor holds its whole result, read when the statement ran (as
// LuaSQL's MySQL and PostgreSQL drivers do), so that each connection needs
// one database connection only: its pool has one, which database/sql
// replaces when the server closed it. Every call is bounded by the time
// left to the request (luabind.Call.Remaining), since the run's time limit
// cannot stop a script while it waits in Go: the call sets a deadline that
// the connections follow (the network drivers' sockets wait on the
// script's thread until then, internal/pollconn; SQLite is interrupted
// then, sqlite.go), and the statements take no context that can end.
package sqlbind
