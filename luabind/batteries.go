package luabind

/*
#include "respond.h"
*/
import "C"

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// registerBatteries installs the response helpers, JSON, crypto and ids:
// the string helpers in C (respond.c), hashing and randomness in Go, and
// the helpers simplest in Lua (batteriesLua).
func registerBatteries(st *State) {
	if C.mg_batteries(st.s) != 0 {
		panic("luabind: installing the magnet helpers: " + st.errText())
	}
	st.Register("magnet", "sha256", luaSHA256)
	st.Register("magnet", "hmac_sha256", luaHMACSHA256)
	st.Register("magnet", "random_bytes", luaRandomBytes)
	st.SetLogger(nil)
	if err := st.DoString(batteriesLua, "=magnet.batteries"); err != nil {
		panic("luabind: " + err.Error())
	}
	// math.random: every worker its own sequence, so that two workers do
	// not hand out the same "random" ids
	var seed [4]byte
	rand.Read(seed[:])
	src := fmt.Sprintf("math.randomseed(%d)", binary.NativeEndian.Uint32(seed[:])>>1)
	if err := st.DoString(src, "=magnet.seed"); err != nil {
		panic("luabind: " + err.Error())
	}
}

// luaSHA256: magnet.sha256(s) -> the 32-byte digest (magnet.hex for text)
func luaSHA256(c *Call) (int, error) {
	s := c.ArgBytes(1)
	if s == nil {
		return 0, c.ArgError(1, "string expected, got "+c.TypeName(1))
	}
	sum := sha256.Sum256(s)
	c.PushBytes(sum[:])
	return 1, nil
}

// luaHMACSHA256: magnet.hmac_sha256(key, s) -> the 32-byte MAC
func luaHMACSHA256(c *Call) (int, error) {
	key := c.ArgBytes(1)
	if key == nil {
		return 0, c.ArgError(1, "string expected, got "+c.TypeName(1))
	}
	s := c.ArgBytes(2)
	if s == nil {
		return 0, c.ArgError(2, "string expected, got "+c.TypeName(2))
	}
	m := hmac.New(sha256.New, key)
	m.Write(s)
	var sum [sha256.Size]byte
	c.PushBytes(m.Sum(sum[:0]))
	return 1, nil
}

// maxRandomBytes bounds magnet.random_bytes: ids and keys, not bulk data.
const maxRandomBytes = 1 << 16

// luaRandomBytes: magnet.random_bytes(n) -> n bytes from crypto/rand
func luaRandomBytes(c *Call) (int, error) {
	n, err := c.CheckNumber(1)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > maxRandomBytes || n != float64(int(n)) {
		return 0, c.ArgError(1, fmt.Sprintf("a whole number from 0 to %d", maxRandomBytes))
	}
	var small [64]byte
	b := small[:0]
	if int(n) > len(small) {
		b = make([]byte, int(n))
	} else {
		b = small[:int(n)]
	}
	rand.Read(b)
	c.PushBytes(b)
	return 1, nil
}

// batteriesLua holds the helpers simplest in Lua: magnet.json over
// lua-cjson, magnet.set_cookie and magnet.redirect.
const batteriesLua = `
local magnet, string, type, tostring, error, pcall, require, setmetatable, math, os, package =
	magnet, string, type, tostring, error, pcall, require, setmetatable, math, os, package

-- magnet.json: lua-cjson (its own instance, so a script's settings do not
-- leak). cjson is left out of package.loaded: whether scripts may require
-- it themselves stays the sandbox's call.
local ok, cjson = pcall(require, "cjson")
package.loaded.cjson = nil
if ok and type(cjson) == "table" and cjson.new then
	local j = cjson.new()
	magnet.json = {encode = j.encode, decode = j.decode, null = j.null}
else
	local msg = "magnet.json needs the lua-cjson C module (Debian: apt-get install lua-cjson)"
	magnet.json = setmetatable({}, {__index = function() error(msg, 2) end})
end

local function append_header(name, v)
	local h = magnet.header
	local old = h[name]
	if old == nil then h[name] = {v}
	elseif type(old) == "table" then old[#old + 1] = v
	else h[name] = {old, v} end
end

local same_site = {strict = "Strict", lax = "Lax", none = "None"}

local function attr(name, v)
	if type(v) ~= "string" or string.find(v, "[%z\1-\31\127;]") then
		error("magnet.set_cookie: invalid " .. name .. " (a string without control characters or ;)", 3)
	end
	return v
end

-- magnet.set_cookie(name, value [, {path, domain, max_age, expires,
-- secure, http_only, same_site}]) adds a Set-Cookie header (RFC 6265).
function magnet.set_cookie(name, value, o)
	if type(name) ~= "string" or name == "" or string.find(name, "[%z\1-\32\127-\255()<>@,;:\\\"/%[%]?={}]") then
		error("magnet.set_cookie: invalid cookie name " .. string.format("%q", tostring(name)), 2)
	end
	if type(value) == "number" then value = tostring(value) end
	if type(value) ~= "string" or string.find(value, "[%z\1-\32\",;\\\127-\255]") then
		error("magnet.set_cookie: invalid value for " .. name .. " (no spaces, quotes, commas, semicolons, backslashes or control characters: escape it, e.g. with magnet.escape_uri)", 2)
	end
	local c = name .. "=" .. value
	if o ~= nil then
		if type(o) ~= "table" then error("magnet.set_cookie: options must be a table", 2) end
		if o.path ~= nil then c = c .. "; Path=" .. attr("path", o.path) end
		if o.domain ~= nil then c = c .. "; Domain=" .. attr("domain", o.domain) end
		if o.max_age ~= nil then
			if type(o.max_age) ~= "number" then error("magnet.set_cookie: max_age must be a number of seconds", 2) end
			c = c .. "; Max-Age=" .. string.format("%d", math.floor(o.max_age))
		end
		if type(o.expires) == "number" then
			c = c .. "; Expires=" .. os.date("!%a, %d %b %Y %H:%M:%S GMT", math.floor(o.expires))
		elseif o.expires ~= nil then
			c = c .. "; Expires=" .. attr("expires", o.expires)
		end
		if o.secure then c = c .. "; Secure" end
		if o.http_only then c = c .. "; HttpOnly" end
		if o.same_site ~= nil then
			local s = type(o.same_site) == "string" and same_site[string.lower(o.same_site)]
			if not s then error("magnet.set_cookie: same_site must be Strict, Lax or None", 2) end
			c = c .. "; SameSite=" .. s
		end
	end
	append_header("Set-Cookie", c)
end

local redirects = {[301] = true, [302] = true, [303] = true, [307] = true, [308] = true}

-- magnet.redirect(url [, status]) answers with Location: url and ends the
-- script, dropping what it printed.
function magnet.redirect(url, status)
	if type(url) ~= "string" or url == "" then error("magnet.redirect: the URL must be a non-empty string", 2) end
	if string.find(url, "[%z\1-\31\127]") then
		error("magnet.redirect: the URL holds a control character (CR or LF?)", 2)
	end
	status = status or 302
	if not redirects[status] then error("magnet.redirect: the status must be 301, 302, 303, 307 or 308", 2) end
	magnet.header["Location"] = url
	magnet.exit(status, "")
end
`
