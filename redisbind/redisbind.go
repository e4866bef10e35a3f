// Package redisbind gives scripts Redis through go-redis:
//
//	local r = magnet.redis.connect("host:port" [, { password =, db =, timeout = }])
//	r:get(k)  r:set(k, v [, ttl])  r:incr(k [, n])  r:del(k)  r:expire(k, ttl)  r:ping()
//
// It lives outside luabind so that luabind stays a leaf free of network
// clients, and binds its functions through luabind's Go functions, which
// never push from Go (luabind/doc.go).
//
// A worker serves one request at a time, so each client holds one
// connection; go-redis replaces it when it breaks, so a client reconnects
// by itself. connect never dials: the first command does. Clients are kept
// per address and options, so a script that connects on every request
// still uses one connection. Every command is bounded by the client's
// timeout and by the time left to the request (luabind.Call.Remaining),
// since the run's time limit cannot stop a script while it waits in Go;
// a failure is nil and a message, never a Lua error.
package redisbind

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/magnet-fcgi/magnet/internal/pollconn"
	"github.com/magnet-fcgi/magnet/luabind"
)

// DefaultTimeout bounds a command when connect is given no timeout.
const DefaultTimeout = time.Second

// setup builds magnet.redis.connect and the client objects on the Go
// functions registered in magnet.redis.__impl.
const setup = `
local redis = magnet.redis
local impl = rawget(redis, "__impl")
rawset(redis, "__impl", nil)
local ids = setmetatable({}, { __mode = "k" })
local methods = {}
for _, name in ipairs({ "get", "set", "incr", "del", "expire", "ping" }) do
	local f = impl[name]
	methods[name] = function(self, ...)
		local id = ids[self]
		if not id then
			error("redis client:" .. name .. ": call it as a method, r:" .. name .. "(...)", 2)
		end
		return f(id, ...)
	end
end
local mt = { __index = methods, __metatable = false,
	__tostring = function(self) return "redis client " .. tostring(rawget(self, "addr")) end }
local connect = impl.connect
rawset(redis, "connect", function(addr, opts)
	if type(addr) ~= "string" then
		error("bad argument #1 to 'connect' (string expected, got " .. type(addr) .. ")", 2)
	end
	if opts ~= nil and type(opts) ~= "table" then
		error("bad argument #2 to 'connect' (table expected, got " .. type(opts) .. ")", 2)
	end
	opts = opts or {}
	local id, err = connect(addr, opts.password, opts.db, opts.timeout)
	if not id then return nil, err end
	local c = setmetatable({ addr = addr }, mt)
	ids[c] = id
	return c
end)
`

// Register installs magnet.redis in st.
func Register(st *luabind.State) error {
	quiet.Do(func() { redis.SetLogger(discard{}) }) // failures go to the script
	b := &binding{byKey: map[string]int{}}
	const t = "magnet.redis.__impl"
	st.Register(t, "connect", b.connect)
	st.Register(t, "get", b.get)
	st.Register(t, "set", b.set)
	st.Register(t, "incr", b.incr)
	st.Register(t, "del", b.del)
	st.Register(t, "expire", b.expire)
	st.Register(t, "ping", b.ping)
	return st.DoString(setup, "=magnet.redis")
}

var quiet sync.Once

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

type binding struct {
	clients []*client
	byKey   map[string]int // connect's arguments to an index in clients
}

type client struct {
	rdb     *redis.Client
	timeout time.Duration
}

// connect(addr, password, db, timeout) -> id | nil, err
func (b *binding) connect(c *luabind.Call) (int, error) {
	addr, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	password, err := c.OptString(2, "")
	if err != nil {
		return 0, err
	}
	db := 0
	if !c.IsNoneOrNil(3) {
		n, err := c.CheckNumber(3)
		if err != nil {
			return 0, err
		}
		if !(n >= 0) || n > math.MaxInt32 || n != math.Trunc(n) {
			return 0, errors.New("redis.connect: db must be an integer from 0")
		}
		db = int(n)
	}
	timeout := DefaultTimeout
	if !c.IsNoneOrNil(4) {
		s, err := c.CheckNumber(4)
		if err != nil {
			return 0, err
		}
		if !(s > 0) || s > 3600 {
			return 0, errors.New("redis.connect: timeout must be a number of seconds above 0, at most 3600")
		}
		timeout = time.Duration(s * float64(time.Second))
	}
	key := fmt.Sprintf("%s\x00%s\x00%d\x00%d", addr, password, db, timeout)
	if id, ok := b.byKey[key]; ok {
		c.PushNumber(float64(id))
		return 1, nil
	}
	network, address := "tcp", addr
	switch {
	case strings.HasPrefix(addr, "unix:"):
		network, address = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"):
		network = "unix"
	default:
		if _, _, err := splitHostPort(addr); err != nil {
			return c.Fail(fmt.Errorf("redis.connect %q: %w", addr, err))
		}
	}
	dial := pollconn.Dialer(nil) // the commands' contexts bound them
	rdb := redis.NewClient(&redis.Options{
		// The connection waits on this thread (internal/pollconn), until
		// the deadlines go-redis sets from each command's context.
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return dial(ctx, network, addr)
		},
		Network:               network,
		Addr:                  address,
		Password:              password,
		DB:                    db,
		Protocol:              2, // no HELLO round trip on connect
		DisableIdentity:       true,
		PoolSize:              1, // one request at a time per worker
		MinIdleConns:          0,
		PoolTimeout:           timeout,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		ContextTimeoutEnabled: true,
		// One retry, so that a connection Redis closed (a restart) is
		// replaced within the command that finds it broken.
		MaxRetries:      1,
		MinRetryBackoff: time.Millisecond,
		MaxRetryBackoff: 10 * time.Millisecond,
		// A Redis that is gone fails the command at once; go-redis then
		// probes it in the background (every second) and dials again
		// once it answers.
		DialerRetries: 1,
	})
	id := len(b.clients)
	b.clients = append(b.clients, &client{rdb: rdb, timeout: timeout})
	b.byKey[key] = id
	c.PushNumber(float64(id))
	return 1, nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, errors.New(`want "host:port", "/path" or "unix:/path"`)
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, errors.New("bad port")
	}
	return addr[:i], port, nil
}

var errTimeUp = errors.New("redis: no time left to the request")

// ctx reads the client id (argument 1) and gives a context bounded by the
// client's timeout and the request's time left.
func (b *binding) ctx(c *luabind.Call) (*client, context.Context, context.CancelFunc, error) {
	n := c.ArgNumber(1)
	if c.ArgType(1) != luabind.TypeNumber || n < 0 || int(n) >= len(b.clients) {
		return nil, nil, nil, errors.New("redis: not a client")
	}
	cl := b.clients[int(n)]
	d := cl.timeout
	if left, ok := c.Remaining(); ok {
		if left <= 0 {
			return cl, nil, nil, errTimeUp
		}
		d = min(d, left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	return cl, ctx, cancel, nil
}

// fail is nil and the error, worded for scripts.
func fail(c *luabind.Call, cmd string, err error) (int, error) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		err = errors.New("timeout")
	case err == errTimeUp:
		return c.Fail(err)
	}
	return c.Fail(fmt.Errorf("redis %s: %w", cmd, err))
}

// keyArg is argument i as a key: a string or a number.
func keyArg(c *luabind.Call, i int) (string, error) {
	switch c.ArgType(i) {
	case luabind.TypeString, luabind.TypeNumber:
		return c.CheckString(i)
	}
	return "", c.ArgError(i, "key: string expected, got "+c.TypeName(i))
}

// ttlArg is argument i as a time to live in seconds, above 0.
func ttlArg(c *luabind.Call, i int) (time.Duration, error) {
	s, err := c.CheckNumber(i)
	if err != nil {
		return 0, err
	}
	if !(s > 0) || s > 1e9 {
		return 0, c.ArgError(i, "ttl: seconds above 0 expected")
	}
	d := time.Duration(s * float64(time.Second))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d, nil
}

// get(id, key) -> value | nil (no such key) | nil, err
func (b *binding) get(c *luabind.Call) (int, error) {
	k, err := keyArg(c, 2)
	if err != nil {
		return 0, err
	}
	cl, ctx, cancel, err := b.ctx(c)
	if err != nil {
		return fail(c, "get", err)
	}
	defer cancel()
	v, err := cl.rdb.Get(ctx, k).Result()
	if err == redis.Nil {
		c.PushNil()
		return 1, nil
	}
	if err != nil {
		return fail(c, "get", err)
	}
	c.PushString(v)
	return 1, nil
}

// set(id, key, value [, ttl]) -> true | nil, err
func (b *binding) set(c *luabind.Call) (int, error) {
	k, err := keyArg(c, 2)
	if err != nil {
		return 0, err
	}
	var v string
	switch c.ArgType(3) {
	case luabind.TypeString, luabind.TypeNumber:
		v, _ = c.CheckString(3)
	case luabind.TypeBoolean:
		v = strconv.FormatBool(c.Bool(3))
	default:
		return 0, c.ArgError(3, "value: string, number or boolean expected, got "+c.TypeName(3))
	}
	var ttl time.Duration
	if !c.IsNoneOrNil(4) {
		if ttl, err = ttlArg(c, 4); err != nil {
			return 0, err
		}
	}
	cl, ctx, cancel, err := b.ctx(c)
	if err != nil {
		return fail(c, "set", err)
	}
	defer cancel()
	if err := cl.rdb.Set(ctx, k, v, ttl).Err(); err != nil {
		return fail(c, "set", err)
	}
	c.PushBool(true)
	return 1, nil
}

// incr(id, key [, n]) -> new value | nil, err; a whole n uses INCRBY, another
// INCRBYFLOAT.
func (b *binding) incr(c *luabind.Call) (int, error) {
	k, err := keyArg(c, 2)
	if err != nil {
		return 0, err
	}
	n := 1.0
	if !c.IsNoneOrNil(3) {
		if n, err = c.CheckNumber(3); err != nil {
			return 0, err
		}
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, c.ArgError(3, "a finite number expected")
		}
	}
	cl, ctx, cancel, err := b.ctx(c)
	if err != nil {
		return fail(c, "incr", err)
	}
	defer cancel()
	var v float64
	if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
		var i int64
		i, err = cl.rdb.IncrBy(ctx, k, int64(n)).Result()
		v = float64(i)
	} else {
		v, err = cl.rdb.IncrByFloat(ctx, k, n).Result()
	}
	if err != nil {
		return fail(c, "incr", err)
	}
	c.PushNumber(v)
	return 1, nil
}

// del(id, key) -> number of keys removed (0 or 1) | nil, err
func (b *binding) del(c *luabind.Call) (int, error) {
	k, err := keyArg(c, 2)
	if err != nil {
		return 0, err
	}
	cl, ctx, cancel, err := b.ctx(c)
	if err != nil {
		return fail(c, "del", err)
	}
	defer cancel()
	n, err := cl.rdb.Del(ctx, k).Result()
	if err != nil {
		return fail(c, "del", err)
	}
	c.PushNumber(float64(n))
	return 1, nil
}

// expire(id, key, ttl) -> true | false (no such key) | nil, err
func (b *binding) expire(c *luabind.Call) (int, error) {
	k, err := keyArg(c, 2)
	if err != nil {
		return 0, err
	}
	ttl, err := ttlArg(c, 3)
	if err != nil {
		return 0, err
	}
	cl, ctx, cancel, err := b.ctx(c)
	if err != nil {
		return fail(c, "expire", err)
	}
	defer cancel()
	var ok bool
	if ttl%time.Second == 0 {
		ok, err = cl.rdb.Expire(ctx, k, ttl).Result()
	} else {
		ok, err = cl.rdb.PExpire(ctx, k, ttl).Result()
	}
	if err != nil {
		return fail(c, "expire", err)
	}
	c.PushBool(ok)
	return 1, nil
}

// ping(id) -> true | nil, err
func (b *binding) ping(c *luabind.Call) (int, error) {
	cl, ctx, cancel, err := b.ctx(c)
	if err != nil {
		return fail(c, "ping", err)
	}
	defer cancel()
	if err := cl.rdb.Ping(ctx).Err(); err != nil {
		return fail(c, "ping", err)
	}
	c.PushBool(true)
	return 1, nil
}
