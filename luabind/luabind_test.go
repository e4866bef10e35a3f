package luabind

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// request builds a Request from name/value pairs.
func request(pairs ...string) *Request {
	r := &Request{}
	for i := 0; i+1 < len(pairs); i += 2 {
		no := len(r.Params)
		r.Params = append(r.Params, pairs[i]...)
		vo := len(r.Params)
		r.Params = append(r.Params, pairs[i+1]...)
		r.Index = append(r.Index, uint32(no), uint32(len(pairs[i])), uint32(vo), uint32(len(pairs[i+1])))
	}
	return r
}

func newState(t testing.TB) *State {
	t.Helper()
	st, err := NewState()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func load(t testing.TB, st *State, name, src string) Chunk {
	t.Helper()
	c, err := st.Load(name, []byte(src), 1700000000)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return c
}

func run(t testing.TB, st *State, c Chunk, r *Request) string {
	t.Helper()
	if r == nil {
		r = &Request{}
	}
	if err := st.Run(c, r); err != nil {
		t.Fatalf("run %s: %v", c.Name(), err)
	}
	return string(st.HeaderBlock()) + string(st.Output())
}

func seed(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSeed123(t *testing.T) {
	st := newState(t)
	c := load(t, st, "/x/123.lua", seed(t, "123.lua"))
	for i := 0; i < 3; i++ {
		out := run(t, st, c, nil)
		if !strings.HasSuffix(out, "\r\n\r\n123") || !strings.Contains(out, "Content-Length: 3\r\n") {
			t.Fatalf("unexpected output %q", out)
		}
		if st.HeaderBlock() != nil {
			t.Fatal("classic script got a structured header block")
		}
	}
}

func TestCacheAdmin(t *testing.T) {
	st := newState(t)
	c123 := load(t, st, "/x/123.lua", seed(t, "123.lua"))
	admin := load(t, st, "/x/cache-admin.lua", seed(t, "cache-admin.lua"))
	run(t, st, c123, nil)
	run(t, st, c123, nil)
	out := run(t, st, admin, nil)
	for _, want := range []string{"<td>/x/123.lua</td>", "<td>/x/cache-admin.lua</td>", `<td align="right">2</td>`, `<td align="right">1</td>`} {
		if !strings.Contains(out, want) {
			t.Errorf("cache-admin output lacks %q:\n%s", want, out)
		}
	}
}

func TestPrintAndWrite(t *testing.T) {
	st := newState(t)
	c := load(t, st, "p", `print("a", 1, 2.5, nil, true, {} ~= nil) io.write("x", 3) io.stdout:write("y"):write("z")`)
	if got := run(t, st, c, nil); got != "a12.5niltruetruex3yz" {
		t.Fatalf("got %q", got)
	}
}

func TestEnvironment(t *testing.T) {
	st := newState(t)
	c := load(t, st, "env", `
		print(tostring(plain), ",", tostring(_G.kept))
		plain = 1
		_G.kept = (_G.kept or 0) + 1`)
	if got := run(t, st, c, nil); got != "nil,nil" {
		t.Fatalf("first run: %q", got)
	}
	if got := run(t, st, c, nil); got != "nil,1" {
		t.Fatalf("second run: %q", got)
	}
	other := load(t, st, "other", `print(_G.kept, plain)`)
	if got := run(t, st, other, nil); got != "2nil" {
		t.Fatalf("_G shared across scripts: %q", got)
	}
}

func TestGetenv(t *testing.T) {
	st := newState(t)
	os.Setenv("MAGNET_TEST_ENV", "fromproc")
	c := load(t, st, "g", `print(os.getenv("QUERY_STRING"), "|", os.getenv("MAGNET_TEST_ENV"), "|", tostring(os.getenv("NOPE")))`)
	if got := run(t, st, c, request("QUERY_STRING", "a=1&b=2")); got != "a=1&b=2|fromproc|nil" {
		t.Fatalf("got %q", got)
	}
	if got := run(t, st, c, nil); got != "nil|fromproc|nil" {
		t.Fatalf("params leaked between requests: %q", got)
	}
}

func TestStructured(t *testing.T) {
	st := newState(t)
	c := load(t, st, "s", `
		magnet.status = 404
		magnet.header["X-A"] = "1"
		magnet.header["Set-Cookie"] = {"a=1", "b=2"}
		local r = magnet.request
		print(r.method, " ", r.get.x, " ", r.query, " ", r.params.FOO)`)
	out := run(t, st, c, request("REQUEST_METHOD", "GET", "QUERY_STRING", "x=h%20i", "FOO", "bar"))
	for _, want := range []string{"Status: 404 Not Found\r\n", "X-A: 1\r\n", "Set-Cookie: a=1\r\n", "Set-Cookie: b=2\r\n", "Content-Type: text/html\r\n", "\r\n\r\nGET h i x=h%20i bar"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %q", want, out)
		}
	}
	plain := load(t, st, "plain", `print(tostring(magnet.status))`)
	if got := run(t, st, plain, nil); got != "nil" {
		t.Fatalf("status leaked into the next request: %q", got)
	}
	bad := load(t, st, "bad", `magnet.header["X"] = "a\r\nInjected: 1"`)
	if err := st.Run(bad, &Request{}); err == nil {
		t.Fatal("header injection was accepted")
	}
}

func TestBody(t *testing.T) {
	st := newState(t)
	c := load(t, st, "b", `
		local l1 = io.read()
		local l2 = io.stdin:read("*l")
		local rest = io.read("*a")
		print(l1, "|", l2, "|", rest, "|", tostring(io.read()))`)
	r := request("CONTENT_LENGTH", "16")
	r.Body = strings.NewReader("one\ntwo\nthree\nfo")
	if got := run(t, st, c, r); got != "one|two|three\nfo|nil" {
		t.Fatalf("got %q", got)
	}
	c2 := load(t, st, "b2", `print(#magnet.request.body(), magnet.request.body() == magnet.request.body(), magnet.request.post.a)`)
	r = request("CONTENT_TYPE", "application/x-www-form-urlencoded")
	r.Body = strings.NewReader("a=x+y&b=2")
	if got := run(t, st, c2, r); got != "9truex y" {
		t.Fatalf("got %q", got)
	}
}

func TestScriptErrors(t *testing.T) {
	st := newState(t)
	c := load(t, st, "/x/err.lua", "print('partial')\nlocal x = nil\nreturn x.field\n")
	err := st.Run(c, &Request{})
	if err == nil || !strings.Contains(err.Error(), "/x/err.lua:3") || !strings.Contains(err.Error(), "stack traceback") {
		t.Fatalf("want a traceback naming the line, got %v", err)
	}
	tbl := load(t, st, "t", `error({code = 7})`)
	if err := st.Run(tbl, &Request{}); err == nil || !strings.Contains(err.Error(), "table") {
		t.Fatalf("table error: %v", err)
	}
	if _, err := st.Load("/x/syntax.lua", []byte("print("), 0); err == nil || !strings.Contains(err.Error(), "syntax.lua") {
		t.Fatalf("syntax error: %v", err)
	}
	ok := load(t, st, "ok", `print("fine")`)
	if got := run(t, st, ok, nil); got != "fine" {
		t.Fatalf("state broken after errors: %q", got)
	}
}

func TestPcallCatchesGoErrors(t *testing.T) {
	st := newState(t)
	c := load(t, st, "pc", `
		local ok, err = pcall(magnet.fs.stat, {})
		local ok2, err2 = pcall(error, {code = 1})
		local ok3, err3 = xpcall(function() return magnet.fs.readfile() end, function(e) return "handled: " .. e end)
		print(ok, "|", err, "|", ok2, "|", err2.code, "|", ok3, "|", err3)`)
	want := "false|bad argument #1 to 'stat' (string expected, got table)|false|1|false|handled: bad argument #1 to 'readfile' (string expected, got no value)"
	if got := run(t, st, c, nil); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	nf := load(t, st, "nf", `local v, e = magnet.fs.stat("/nonexistent/x") print(v, e ~= nil)`)
	if got := run(t, st, nf, nil); got != "niltrue" {
		t.Fatalf("got %q", got)
	}
}

// TestErrorSoak raises 100,000 errors from Go-backed functions, caught by
// pcall, and 10,000 uncaught errors in one state; the state must keep
// answering and its Lua heap must stop growing.
func TestErrorSoak(t *testing.T) {
	st := newState(t)
	caught := load(t, st, "caught", `
		local n = 0
		for i = 1, 1000 do
			local ok = pcall(magnet.fs.stat, nil)
			if not ok then n = n + 1 end
		end
		print(n)`)
	uncaught := load(t, st, "uncaught", `magnet.fs.readdir(false)`)
	c123 := load(t, st, "/x/123.lua", seed(t, "123.lua"))
	var mid uint64
	for i := 0; i < 100; i++ {
		if got := run(t, st, caught, nil); got != "1000" {
			t.Fatalf("round %d: %q", i, got)
		}
		for j := 0; j < 100; j++ {
			if err := st.Run(uncaught, &Request{}); err == nil {
				t.Fatal("uncaught error not reported")
			}
		}
		if i == 50 {
			st.Lua().GC(2, 0) // full collection
			mid = st.MemoryBytes()
		}
	}
	st.Lua().GC(2, 0)
	end := st.MemoryBytes()
	if end > mid+64*1024 {
		t.Errorf("Lua heap grew from %d to %d bytes", mid, end)
	}
	if out := run(t, st, c123, nil); !strings.HasSuffix(out, "123") {
		t.Fatalf("123.lua after the soak: %q", out)
	}
}

func BenchmarkRun123(b *testing.B) {
	st := newState(b)
	c := load(b, st, "/x/123.lua", seed(b, "123.lua"))
	r := request("SCRIPT_FILENAME", "/x/123.lua", "REQUEST_METHOD", "GET", "QUERY_STRING", "")
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.Run(c, r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTemplate(t *testing.T) {
	st := newState(t)
	src, err := os.ReadFile("testdata/template.lua")
	if err != nil {
		t.Fatal(err)
	}
	c := load(t, st, "template.lua", string(src))
	out := run(t, st, c, nil)
	for _, want := range []string{"<h1>Scores &amp; ranks</h1>", "<td>User &lt;7&gt;</td>", "<b>star</b>", "magnet &mdash; 2026"} {
		if !strings.Contains(out, want) {
			t.Errorf("template output lacks %q", want)
		}
	}
}

// BenchmarkTemplate runs a CPU-bound 140-line template renderer; compare
// `go test -bench Template ./luabind/` with `-tags luajit`.
func BenchmarkTemplate(b *testing.B) {
	st := newState(b)
	src, err := os.ReadFile("testdata/template.lua")
	if err != nil {
		b.Fatal(err)
	}
	c := load(b, st, "template.lua", string(src))
	r := &Request{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.Run(c, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad140 compiles a 140-line script, the cost of a reload.
func BenchmarkLoad140(b *testing.B) {
	st := newState(b)
	src, err := os.ReadFile("testdata/template.lua")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := st.Load("template.lua", src, 0)
		if err != nil {
			b.Fatal(err)
		}
		st.Unload(c)
	}
}

func TestTimeout(t *testing.T) {
	if LuaJIT {
		t.Skip("LuaJIT does not run hooks in compiled loops: the time limit is best effort there")
	}
	st := newState(t)
	st.SetTimeout(200 * time.Millisecond)
	c := load(t, st, "loop", `while true do end`)
	start := time.Now()
	err := st.Run(c, &Request{})
	if err == nil || !strings.Contains(err.Error(), "time limit") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	ok := load(t, st, "ok", `print("ok")`)
	if got := run(t, st, ok, nil); got != "ok" {
		t.Fatalf("after timeout: %q", got)
	}
}
