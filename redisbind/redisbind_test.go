package redisbind_test

import (
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/redisbind"
)

func newState(t *testing.T) *luabind.State {
	t.Helper()
	st, err := luabind.NewState()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := redisbind.Register(st); err != nil {
		t.Fatal(err)
	}
	return st
}

// run runs src as a request and returns what it printed, or its error.
func run(t *testing.T, st *luabind.State, src string) (string, error) {
	t.Helper()
	c, err := st.Load("=test", []byte(show+src), 0)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer st.Unload(c)
	err = st.Run(c, &luabind.Request{})
	return string(st.Output()), err
}

// show makes print write tab-separated values and a newline, as the
// standalone interpreter does.
const show = `local print = function(...) local t = {} for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end io.write(table.concat(t, "\t"), "\n") end `

func mustRun(t *testing.T, st *luabind.State, src string) string {
	t.Helper()
	out, err := run(t, st, src)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, src)
	}
	return out
}

// TestCommands: every command on a real redis-server, over TCP and over a
// unix socket.
func TestCommands(t *testing.T) {
	r := testutil.StartRedis(t, "127.0.0.1", 0)
	for _, addr := range []string{r.Addr, r.Socket, "unix:" + r.Socket} {
		t.Run(addr, func(t *testing.T) {
			st := newState(t)
			out := mustRun(t, st, `
local r = assert(magnet.redis.connect("`+addr+`", { timeout = 5 }))
r:del("k") r:del("n") r:del("f")
print(r:ping(), r:get("k"), r:set("k", "v1"), r:get("k"))
print(r:set("k", 42), r:get("k"), r:set("k", true), r:get("k"))
print(r:incr("n"), r:incr("n", 10), r:incr("n", -1), r:incr("f", 0.5))
print(r:expire("n", 100), r:expire("nope", 100), r:del("n"), r:del("n"), r:get("n"))
print(r:set("t", "x", 0.05))
local r2 = magnet.redis.connect("`+addr+`", { timeout = 5 })
print(rawequal(r, r2), tostring(r):match("^redis client") ~= nil)
`)
			want := "true\tnil\ttrue\tv1\ntrue\t42\ttrue\ttrue\n1\t11\t10\t0.5\ntrue\tfalse\t1\t0\tnil\ntrue\nfalse\ttrue\n"
			if out != want {
				t.Fatalf("got\n%s\nwant\n%s", out, want)
			}
			// the short ttl expires
			deadline := time.Now().Add(10 * time.Second)
			for mustRun(t, st, `local r = magnet.redis.connect("`+addr+`", { timeout = 5 }) print(r:get("t"))`) != "nil\n" {
				if time.Now().After(deadline) {
					t.Fatal("a 50ms ttl did not expire")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestRedisGone: a killed Redis gives nil, err at once; a started one
// serves the same client again, which reconnected by itself.
func TestRedisGone(t *testing.T) {
	r := testutil.StartRedis(t, "", 0)
	st := newState(t)
	st.SetTimeout(5 * time.Second)
	mustRun(t, st, `_G.R = assert(magnet.redis.connect("`+r.Socket+`")) assert(R:set("a", "1"))`)
	r.Stop()
	start := time.Now()
	out := mustRun(t, st, `print(R:get("a")) print(R:incr("a"))`)
	if !strings.HasPrefix(out, "nil\tredis get: ") || !strings.Contains(out, "nil\tredis incr: ") {
		t.Fatalf("with Redis gone: %q", out)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("failing took %v", took)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	// go-redis probes a Redis that went away every second
	deadline := time.Now().Add(20 * time.Second)
	for {
		out = mustRun(t, st, `print(R:get("a"), R:set("a", "2"), R:get("a"))`)
		if out == "nil\ttrue\t2\n" {
			break
		}
		if !strings.HasPrefix(out, "nil\tnil\tnil\tredis get: ") || time.Now().After(deadline) {
			t.Fatalf("after Redis came back: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("reconnected %v after Redis restarted", time.Since(start).Round(time.Millisecond))
}

// TestRequestTime: a Redis that accepts but never answers costs the
// script no more than the request's time left, whatever the client's
// timeout.
func TestRequestTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	st := newState(t)
	st.SetTimeout(400 * time.Millisecond)
	start := time.Now()
	out, err := run(t, st, `
local r = assert(magnet.redis.connect("`+ln.Addr().String()+`", { timeout = 60 }))
print(r:get("k"))`)
	took := time.Since(start)
	if err != nil {
		// the time limit hook may also fire on the way out
		if !strings.Contains(err.Error(), "time") {
			t.Fatalf("run: %v", err)
		}
	} else if !strings.HasPrefix(out, "nil\t") {
		t.Fatalf("got %q, want nil, err", out)
	}
	if took > 3*time.Second {
		t.Fatalf("a hung Redis held the request %v under a 400ms limit", took)
	}
	t.Logf("%q after %v", out, took.Round(time.Millisecond))
}

// TestBadInput: wrong arguments are Lua errors; a bad address is nil, err.
func TestBadInput(t *testing.T) {
	r := testutil.StartRedis(t, "", 0)
	st := newState(t)
	out := mustRun(t, st, `print(magnet.redis.connect("no-port"))`)
	if !strings.HasPrefix(out, "nil\tredis.connect") {
		t.Fatalf("bad address: %q", out)
	}
	for _, bad := range []string{
		`magnet.redis.connect(42)`,
		`magnet.redis.connect("` + r.Socket + `", "x")`,
		`magnet.redis.connect("` + r.Socket + `", { db = -1 })`,
		`magnet.redis.connect("` + r.Socket + `", { timeout = 0/0 })`,
		`local r = magnet.redis.connect("` + r.Socket + `") r.get("k")`,
		`local r = magnet.redis.connect("` + r.Socket + `") r:set("k", {})`,
		`local r = magnet.redis.connect("` + r.Socket + `") r:set("k", "v", -1)`,
		`local r = magnet.redis.connect("` + r.Socket + `") r:expire("k", 0/0)`,
		`local r = magnet.redis.connect("` + r.Socket + `") r:incr("k", 1/0)`,
		`local r = magnet.redis.connect("` + r.Socket + `") r:get(nil)`,
	} {
		if _, err := run(t, st, bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	out = mustRun(t, st, `local r = magnet.redis.connect("`+r.Socket+`") r:set("s", "x") print(r:incr("s"))`)
	if !strings.HasPrefix(out, "nil\tredis incr: ") {
		t.Fatalf("incr of a string: %q", out)
	}
}

// BenchmarkIncr: one INCR per run over a kept client, from a goroutine
// locked to its thread as the worker's loop is.
func BenchmarkIncr(b *testing.B) {
	r := testutil.StartRedis(b, "", 0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st, err := luabind.NewState()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	if err := redisbind.Register(st); err != nil {
		b.Fatal(err)
	}
	c, err := st.Load("=bench", []byte(`_G.R = _G.R or magnet.redis.connect(`+strconv.Quote(r.Socket)+`)
		assert(R:incr("bench"))`), 0)
	if err != nil {
		b.Fatal(err)
	}
	req := &luabind.Request{}
	b.ResetTimer()
	for range b.N {
		if err := st.Run(c, req); err != nil {
			b.Fatal(err)
		}
	}
}
