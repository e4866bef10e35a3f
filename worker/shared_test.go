package worker

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/shdict"
	"github.com/magnet-fcgi/magnet/protocol"
)

func newShared(t testing.TB, name string, size int64) *shdict.Dict {
	t.Helper()
	d, err := shdict.Create(name, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestSharedAPI runs the ngx.shared.DICT-style methods from Lua.
func TestSharedAPI(t *testing.T) {
	dir := t.TempDir()
	d := newShared(t, "cache", 1<<20)
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir), Shared: []*shdict.Dict{d}})
	c := dial(t, sock)
	script := writeScript(t, dir, "api.lua", `
local d = magnet.shared.cache
local out = {}
local function p(...)
	local t = {...}
	for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
	out[#out + 1] = table.concat(t, ",")
end
p(d:set("s", "hello", 0, 5))
p(d:get("s"))
p(d.get("s"))
p(d:set("n", 41))
p(d:incr("n", 1))
p(d:incr("missing", 1))
p(d:incr("fresh", 2, 10))
p(d:set("b", false))
p(d:get("b"))
p(d:add("s", "x"))
p(d:replace("nope", "x"))
p(d:incr("s", 1))
p(d:set("t", "v", 100))
local ttl = d:ttl("t")
p(ttl > 99 and ttl <= 100)
p(d:ttl("s"))
p(d:expire("nope", 1))
p(d:delete("s"))
p(d:get("s"))
p(d:get(nil))
p(d:get(""))
p(d:set(string.rep("k", 65536), 1))
p(#d:get_keys(), #d:get_keys(2))
p(d:capacity(), d:free_space() > 0)
d:flush_all()
p(#d:get_keys(0))
p(d:flush_expired())
io.write("Content-Type: text/plain\r\n\r\n", table.concat(out, "\n"))
`)
	_, body, _ := get(t, c, script, true)
	want := strings.Join([]string{
		"true,nil,false",
		"hello,5",
		"hello,5",
		"true,nil,false",
		"42,nil,false",
		"nil,not found,false",
		"12,nil,false",
		"true,nil,false",
		"false",
		"false,exists,false",
		"false,not found,false",
		"nil,not a number,false",
		"true,nil,false",
		"true",
		"0",
		"nil,not found",
		"true",
		"nil",
		"nil,nil key",
		"nil,empty key",
		"false,key too long,false",
		"4,2",
		"1048576,true",
		"0",
		"0",
	}, "\n")
	if body != want {
		t.Fatalf("got:\n%s\nwant:\n%s", body, want)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSharedBadInput: wrong types and bad ttls are Lua errors; an
// undeclared dictionary names the declared ones; nothing corrupts the
// store, and the worker keeps serving.
func TestSharedBadInput(t *testing.T) {
	dir := t.TempDir()
	d := newShared(t, "cache", 64<<10)
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir), Shared: []*shdict.Dict{d}, Debug: true})
	c := dial(t, sock)
	for _, tc := range []struct{ src, want string }{
		{`magnet.shared.nope:get("k")`, "magnet.shared.nope: no such dictionary (declared: cache"},
		{`magnet.shared.x = 1`, "magnet.shared is read-only"},
		{`magnet.shared.cache:set("k", {})`, "bad value type"},
		{`magnet.shared.cache:set({}, 1)`, "string expected, got table"},
		{`magnet.shared.cache:set("k", 1, -1)`, "bad ttl"},
		{`magnet.shared.cache:set("k", 1, 0/0)`, "bad ttl"},
		{`magnet.shared.cache:set("k", 1, 0, -1)`, "bad flags"},
		{`magnet.shared.cache:incr("k", "x")`, "number expected"},
		{`magnet.shared.cache:expire("k")`, "number expected"},
	} {
		s := writeScript(t, dir, "bad.lua", tc.src)
		status, body, _ := get(t, c, s, true)
		if status != 500 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want 500 with %q", tc.src, status, body, tc.want)
		}
	}
	// A value bigger than the store: no memory, store intact.
	s := writeScript(t, dir, "big.lua", `
local d = magnet.shared.cache
d:set("keep", "me")
local ok, err = d:set("big", string.rep("x", 100000))
io.write("Content-Type: text/plain\r\n\r\n", tostring(ok), "\t", err, "\t", d:get("keep"))`)
	if _, body, _ := get(t, c, s, true); body != "false\tno memory\tme" {
		t.Fatalf("big value: %q", body)
	}
	// Filling the store evicts and reports forcible.
	s = writeScript(t, dir, "fill.lua", `
local d = magnet.shared.cache
local forced = false
for i = 1, 2000 do
	local ok, err, f = d:set("k" .. i, string.rep("v", 100))
	if not ok then error(err) end
	forced = forced or f
end
io.write("Content-Type: text/plain\r\n\r\n", tostring(forced), "\t", d:get("k2000"), "\t", tostring(d:get("k1")))`)
	if _, body, _ := get(t, c, s, true); !strings.HasPrefix(body, "true\t"+strings.Repeat("v", 100)+"\tnil") {
		t.Fatalf("fill: %q", body)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSharedNone: without dictionaries magnet.shared exists and says so.
func TestSharedNone(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir), Debug: true})
	c := dial(t, sock)
	s := writeScript(t, dir, "none.lua", `return magnet.shared.sessions:get("k")`)
	if status, body, _ := get(t, c, s, true); status != 500 || !strings.Contains(body, "declared: none") {
		t.Fatalf("%d %q", status, body)
	}
}

// BenchmarkSharedLua is the cost of one get or incr from Lua: each
// request runs 1,000 of them.
func BenchmarkSharedLua(b *testing.B) {
	for _, op := range []string{"get", "incr"} {
		b.Run(op, func(b *testing.B) {
			dir := b.TempDir()
			d := newShared(b, "bench", 1<<20)
			d.Store([]byte("k"), shdict.Value{Kind: shdict.Number, Num: 1}, 0, 0, shdict.Set)
			call := `d:get("k")`
			if op == "incr" {
				call = `d:incr("k", 1)`
			}
			script := writeScript(b, dir, "b.lua", "local d = magnet.shared.bench\nfor i = 1, 1000 do "+call+" end\nprint(\"Content-Type: text/plain\\r\\n\\r\\n1\")")
			lfd, err := Listen(filepath.Join(dir, "l.sock"), 1)
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(Config{ListenFD: lfd, Scripts: scriptsIn(dir), Shared: []*shdict.Dict{d}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Close)
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { unix.Close(fds[1]) })
			conn := s.newConn(fds[0])
			req := protocol.EncodeRequest(nil, &protocol.Request{KeepConn: true, Params: []protocol.Pair{
				{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: "GET"}}})
			buf := make([]byte, 4096)
			roundTrip(b, s, conn, fds[1], req, buf)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				roundTrip(b, s, conn, fds[1], req, buf)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/"+op)
		})
	}
}
