//go:build luajit

package luabind

// LuaJIT reports whether this build runs LuaJIT instead of PUC Lua 5.1.
const LuaJIT = true
