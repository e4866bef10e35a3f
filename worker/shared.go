package worker

import (
	"errors"
	"math"
	"time"

	"github.com/magnet-fcgi/magnet/internal/shdict"
	"github.com/magnet-fcgi/magnet/luabind"
)

// magnet.shared.NAME: the shared dictionaries, with the methods of
// OpenResty's ngx.shared.DICT. Each method is a Go-backed function bound
// to its dictionary; it may be called as dict:get(k) or dict.get(k).

// sharedSetup makes magnet.shared a table whose undeclared names raise a
// clear error, and which scripts cannot change.
const sharedSetup = `
local shared = rawget(magnet, "shared") or {}
rawset(magnet, "shared", shared)
local names = {}
for k in pairs(shared) do names[#names + 1] = k end
table.sort(names)
local declared = #names > 0 and table.concat(names, ", ") or "none"
setmetatable(shared, {
	__index = function(_, name)
		error("magnet.shared." .. tostring(name) .. ": no such dictionary (declared: " .. declared ..
			"; declare one with --shared NAME=SIZE)", 2)
	end,
	__newindex = function() error("magnet.shared is read-only", 2) end,
	__metatable = false,
})
`

// registerShared installs magnet.shared and a table of methods for each
// dictionary.
func registerShared(st *luabind.State, dicts []*shdict.Dict) error {
	for _, d := range dicts {
		b := &sharedDict{d: d}
		t := "magnet.shared." + d.Name()
		st.Register(t, "get", b.get)
		st.Register(t, "set", b.store(shdict.Set))
		st.Register(t, "safe_set", b.store(shdict.SafeSet))
		st.Register(t, "add", b.store(shdict.Add))
		st.Register(t, "safe_add", b.store(shdict.SafeAdd))
		st.Register(t, "replace", b.store(shdict.Replace))
		st.Register(t, "delete", b.delete)
		st.Register(t, "incr", b.incr)
		st.Register(t, "ttl", b.ttl)
		st.Register(t, "expire", b.expire)
		st.Register(t, "get_keys", b.keys)
		st.Register(t, "flush_all", b.flushAll)
		st.Register(t, "flush_expired", b.flushExpired)
		st.Register(t, "capacity", b.capacity)
		st.Register(t, "free_space", b.freeSpace)
	}
	return st.DoString(sharedSetup, "=magnet.shared")
}

type sharedDict struct {
	d   *shdict.Dict
	buf []byte // a value read by get, reused
}

// self is the index of the first argument after the dictionary itself.
func self(c *luabind.Call) int {
	if c.ArgType(1) == luabind.TypeTable {
		return 2
	}
	return 1
}

var errNilKey = errors.New("nil key")

// key reads the key argument: a string or a number. A nil key is a soft
// error (nil, "nil key"), another type a Lua error.
func key(c *luabind.Call, i int) ([]byte, error, error) {
	switch c.ArgType(i) {
	case luabind.TypeString:
		return c.ArgBytes(i), nil, nil
	case luabind.TypeNumber:
		s, err := c.CheckString(i)
		return []byte(s), nil, err
	case luabind.TypeNil, luabind.TypeNone:
		return nil, errNilKey, nil
	}
	return nil, nil, c.ArgError(i, "string expected, got "+c.TypeName(i))
}

// ttl reads an optional time to live in seconds: a non-negative number.
func ttlArg(c *luabind.Call, i int) (time.Duration, error) {
	if c.IsNoneOrNil(i) {
		return 0, nil
	}
	s, err := c.CheckNumber(i)
	if err != nil {
		return 0, err
	}
	if !(s >= 0) || s > 1e9 {
		return 0, c.ArgError(i, "bad ttl: a number of seconds from 0 (none) to 1e9 expected")
	}
	return time.Duration(s * float64(time.Second)), nil
}

func flagsArg(c *luabind.Call, i int) (uint32, error) {
	if c.IsNoneOrNil(i) {
		return 0, nil
	}
	f, err := c.CheckNumber(i)
	if err != nil {
		return 0, err
	}
	if !(f >= 0) || f > math.MaxUint32 || f != math.Trunc(f) {
		return 0, c.ArgError(i, "bad flags: an integer from 0 to 4294967295 expected")
	}
	return uint32(f), nil
}

func valueArg(c *luabind.Call, i int) (shdict.Value, error) {
	switch c.ArgType(i) {
	case luabind.TypeNil, luabind.TypeNone:
		return shdict.Value{}, nil
	case luabind.TypeString:
		return shdict.Value{Kind: shdict.String, Str: c.ArgBytes(i)}, nil
	case luabind.TypeNumber:
		return shdict.Value{Kind: shdict.Number, Num: c.ArgNumber(i)}, nil
	case luabind.TypeBoolean:
		v := shdict.Value{Kind: shdict.Bool}
		if c.Bool(i) {
			v.Num = 1
		}
		return v, nil
	}
	return shdict.Value{}, c.ArgError(i, "bad value type: string, number, boolean or nil expected, got "+c.TypeName(i))
}

func pushValue(c *luabind.Call, v shdict.Value) {
	switch v.Kind {
	case shdict.String:
		c.PushBytes(v.Str)
	case shdict.Number:
		c.PushNumber(v.Num)
	case shdict.Bool:
		c.PushBool(v.Num != 0)
	default:
		c.PushNil()
	}
}

// get(key) -> value, flags (flags only when not 0) | nil | nil, err
func (b *sharedDict) get(c *luabind.Call) (int, error) {
	k, soft, err := key(c, self(c))
	if err != nil {
		return 0, err
	}
	if soft != nil {
		return c.Fail(soft)
	}
	v, flags, ok, err := b.d.Get(k, b.buf)
	if err != nil {
		return c.Fail(err)
	}
	if v.Kind == shdict.String {
		b.buf = v.Str[:0]
	}
	if !ok {
		c.PushNil()
		return 1, nil
	}
	pushValue(c, v)
	if flags != 0 {
		c.PushNumber(float64(flags))
		return 2, nil
	}
	return 1, nil
}

// set, safe_set, add, safe_add, replace(key, value [, ttl [, flags]])
// -> ok, err, forcible
func (b *sharedDict) store(mode shdict.Mode) luabind.Func {
	return func(c *luabind.Call) (int, error) {
		i := self(c)
		k, soft, err := key(c, i)
		if err != nil {
			return 0, err
		}
		v, err := valueArg(c, i+1)
		if err != nil {
			return 0, err
		}
		ttl, err := ttlArg(c, i+2)
		if err != nil {
			return 0, err
		}
		flags, err := flagsArg(c, i+3)
		if err != nil {
			return 0, err
		}
		forcible := false
		if soft == nil {
			forcible, soft = b.d.Store(k, v, ttl, flags, mode)
		}
		if soft != nil {
			c.PushBool(false)
			c.PushString(soft.Error())
		} else {
			c.PushBool(true)
			c.PushNil()
		}
		c.PushBool(forcible)
		return 3, nil
	}
}

// delete(key) -> true | false, err
func (b *sharedDict) delete(c *luabind.Call) (int, error) {
	k, soft, err := key(c, self(c))
	if err != nil {
		return 0, err
	}
	if soft == nil {
		soft = b.d.Delete(k)
	}
	if soft != nil {
		c.PushBool(false)
		c.PushString(soft.Error())
		return 2, nil
	}
	c.PushBool(true)
	return 1, nil
}

// incr(key, n [, init [, init_ttl]]) -> value, nil, forcible | nil, err, forcible
func (b *sharedDict) incr(c *luabind.Call) (int, error) {
	i := self(c)
	k, soft, err := key(c, i)
	if err != nil {
		return 0, err
	}
	n, err := c.CheckNumber(i + 1)
	if err != nil {
		return 0, err
	}
	hasInit := !c.IsNoneOrNil(i + 2)
	var init float64
	var initTTL time.Duration
	if hasInit {
		if init, err = c.CheckNumber(i + 2); err != nil {
			return 0, err
		}
		if initTTL, err = ttlArg(c, i+3); err != nil {
			return 0, err
		}
	}
	var v float64
	forcible := false
	if soft == nil {
		v, forcible, soft = b.d.Incr(k, n, hasInit, init, initTTL)
	}
	if soft != nil {
		c.PushNil()
		c.PushString(soft.Error())
	} else {
		c.PushNumber(v)
		c.PushNil()
	}
	c.PushBool(forcible)
	return 3, nil
}

// ttl(key) -> seconds left (0: none) | nil, err
func (b *sharedDict) ttl(c *luabind.Call) (int, error) {
	k, soft, err := key(c, self(c))
	if err != nil {
		return 0, err
	}
	if soft != nil {
		return c.Fail(soft)
	}
	d, err := b.d.TTL(k)
	if err != nil {
		return c.Fail(err)
	}
	c.PushNumber(d.Seconds())
	return 1, nil
}

// expire(key, ttl) -> true | nil, err
func (b *sharedDict) expire(c *luabind.Call) (int, error) {
	i := self(c)
	k, soft, err := key(c, i)
	if err != nil {
		return 0, err
	}
	if _, err := c.CheckNumber(i + 1); err != nil {
		return 0, err
	}
	ttl, err := ttlArg(c, i+1)
	if err != nil {
		return 0, err
	}
	if soft == nil {
		soft = b.d.Expire(k, ttl)
	}
	if soft != nil {
		return c.Fail(soft)
	}
	c.PushBool(true)
	return 1, nil
}

// get_keys([max]) -> {keys}, at most max (default 1024, 0: all)
func (b *sharedDict) keys(c *luabind.Call) (int, error) {
	max, err := maxCount(c, self(c), 1024)
	if err != nil {
		return 0, err
	}
	c.NewTable(0, 0)
	n := 0
	b.d.Keys(max, func(k []byte) {
		n++
		c.PushBytes(k)
		c.SetIndex(-2, n)
	})
	return 1, nil
}

// maxCount reads the optional max count argument i of get_keys and
// flush_expired: def when it is absent, else a number >= 0.
func maxCount(c *luabind.Call, i, def int) (int, error) {
	if c.IsNoneOrNil(i) {
		return def, nil
	}
	n, err := c.CheckNumber(i)
	if err != nil {
		return 0, err
	}
	if !(n >= 0) {
		return 0, c.ArgError(i, "bad max count")
	}
	return int(min(n, math.MaxInt32)), nil
}

// flush_all()
func (b *sharedDict) flushAll(c *luabind.Call) (int, error) {
	b.d.FlushAll()
	return 0, nil
}

// flush_expired([max]) -> how many were removed
func (b *sharedDict) flushExpired(c *luabind.Call) (int, error) {
	max, err := maxCount(c, self(c), 0)
	if err != nil {
		return 0, err
	}
	c.PushNumber(float64(b.d.FlushExpired(max)))
	return 1, nil
}

// capacity() -> bytes
func (b *sharedDict) capacity(c *luabind.Call) (int, error) {
	c.PushNumber(float64(b.d.Capacity()))
	return 1, nil
}

// free_space() -> bytes
func (b *sharedDict) freeSpace(c *luabind.Call) (int, error) {
	c.PushNumber(float64(b.d.FreeSpace()))
	return 1, nil
}
