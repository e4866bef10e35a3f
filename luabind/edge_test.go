package luabind

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runErr runs c and returns its error text ("" on success) and output.
func runErr(t testing.TB, st *State, c Chunk, r *Request) (string, string) {
	t.Helper()
	if r == nil {
		r = &Request{}
	}
	if err := st.Run(c, r); err != nil {
		return err.Error(), ""
	}
	return "", string(st.HeaderBlock()) + string(st.Output())
}

// mustFail runs src and wants an error containing want; then the state
// must still serve a plain script.
func mustFail(t *testing.T, st *State, name, src, want string) string {
	t.Helper()
	c := load(t, st, name, src)
	msg, out := runErr(t, st, c, nil)
	if msg == "" {
		t.Fatalf("%s: no error, output %q", name, out)
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("%s: error %q lacks %q", name, msg, want)
	}
	ok := load(t, st, "ok-after-"+name, `print("ok")`)
	if got := run(t, st, ok, nil); got != "ok" {
		t.Fatalf("after %s: %q", name, got)
	}
	return msg
}

func bodyRequest(body string) *Request {
	r := request("CONTENT_LENGTH", "0")
	r.Body = strings.NewReader(body)
	return r
}

func TestBodyEdges(t *testing.T) {
	st := newState(t)
	cases := []struct {
		name, src, body, want string
	}{
		{"n", `local a, b = io.read("*n", "*n") print(a, "|", b, "|", io.read("*l"), "|", io.read("*l"))`, "12 0x1F\nnext\n", "12|31||next"},
		{"n-bad", `local a, b = io.read("*n", "*l") print(tostring(a), "|", tostring(b), "|", io.read("*a"))`, "abc\n", "nil|nil|abc\n"},
		{"n-float", `print(io.read("*n") * 2, "|", io.read("*a"))`, "  -1.5e1xyz", "-30|xyz"},
		{"n-eof", `print(tostring(io.read("*n")))`, "", "nil"},
		{"zero", `print(io.read(0), "|", io.read(3), "|", tostring(io.read(0)), "|", tostring(io.read(1)))`, "abc", "|abc|nil|nil"},
		{"zero-empty", `print(tostring(io.read(0)))`, "", "nil"},
		{"lines", `local n = 0 for l in io.lines() do n = n + 1 io.write("[", l, "]") end print(n)`, "a\n\nb\nc", "[a][][b][c]4"},
		{"stdin-lines", `for l in io.stdin:lines() do io.write(l, ";") end`, "x\ny\n", "x;y;"},
		{"stdin-read", `print(io.stdin:read(2), io.stdin:read("*a"))`, "hello", "hello"},
		{"read-n-more", `print(#io.read(100000), tostring(io.read(1)))`, strings.Repeat("z", 50000), "50000nil"},
		{"unread", `print("ignored body")`, strings.Repeat("q", 1<<20), "ignored body"},
	}
	for _, tc := range cases {
		c := load(t, st, tc.name, tc.src)
		if got := run(t, st, c, bodyRequest(tc.body)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	// one result per format: more formats than the C stack's spare room
	many := load(t, st, "many", `local t = {} for i = 1, 3000 do t[i] = 1 end local r = {io.stdin:read(unpack(t))} print(#r, r[3000])`)
	for i := 0; i < 5; i++ {
		if got := run(t, st, many, bodyRequest(strings.Repeat("x", 6000))); got != "3000x" {
			t.Fatalf("many formats: %q", got)
		}
	}
	mustFail(t, st, "too-many", `local t = {} for i = 1, 5000 do t[i] = 1 end io.read(unpack(t))`, "too many arguments")
	bad := load(t, st, "badfmt", `io.read("*x")`)
	if msg, _ := runErr(t, st, bad, bodyRequest("a")); !strings.Contains(msg, "invalid format") {
		t.Errorf("bad format: %q", msg)
	}
}

// TestBodyLinesStream reads a 4 MiB body line by line; the read-ahead
// buffer must not grow to hold the whole body.
func TestBodyLinesStream(t *testing.T) {
	st := newState(t)
	line := strings.Repeat("x", 999) + "\n"
	body := strings.Repeat(line, 4096)
	c := load(t, st, "lines", `local n, b = 0, 0 for l in io.lines() do n = n + 1 b = b + #l end print(n, " ", b, " ", collectgarbage("count") < 1e6)`)
	if got := run(t, st, c, bodyRequest(body)); got != "4096 4091904 true" {
		t.Fatalf("got %q", got)
	}
	if cap := int(st.s.in.cap); cap > 1<<20 {
		t.Fatalf("read-ahead buffer grew to %d bytes for a line-by-line read", cap)
	}
}

func TestStructuredEdges(t *testing.T) {
	st := newState(t)
	c := load(t, st, "whole", `
		magnet.header = {["X-One"] = 1, ["X-Float"] = 2.5, ["X-List"] = {"a", 7}, ["Content-Type"] = "text/plain"}
		magnet.status = "201"
		print(magnet.status)`)
	out := run(t, st, c, nil)
	for _, want := range []string{"Status: 201 Created\r\n", "X-One: 1\r\n", "X-Float: 2.5\r\n", "X-List: a\r\n", "X-List: 7\r\n", "Content-Type: text/plain\r\n", "\r\n\r\n201"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %q", want, out)
		}
	}
	if strings.Contains(out, "text/html") {
		t.Errorf("default Content-Type added beside the script's: %q", out)
	}
	fails := []struct{ name, src, want string }{
		{"name-space", `magnet.header["Bad Name"] = "x"`, "invalid header"},
		{"name-colon", `magnet.header["A:B"] = "x"`, "invalid header"},
		{"name-empty", `magnet.header[""] = "x"`, "invalid header"},
		{"name-nl", `magnet.header["A\nB"] = "x"`, "invalid header"},
		{"name-number", `magnet.header[1] = "x"`, "names must be strings"},
		{"value-cr", `magnet.header["X"] = "a\rb"`, "invalid header"},
		{"value-nul", `magnet.header["X"] = "a\0b"`, "invalid header"},
		{"value-bool", `magnet.header["X"] = true`, "must be a string or number"},
		{"value-list-bad", `magnet.header["X"] = {"ok", {}}`, "must be a string or number"},
		{"status-header", `magnet.header["status"] = "200"`, "magnet.status"},
		{"header-not-table", `magnet.header = "x"`, "table expected"},
		{"status-low", `magnet.status = 99`, "not an HTTP status"},
		{"status-high", `magnet.status = 1000`, "not an HTTP status"},
		{"status-neg", `magnet.status = -200`, "not an HTTP status"},
		{"status-wrap", `magnet.status = 2^32 + 200`, "not an HTTP status"},
		{"status-nan", `magnet.status = 0/0`, "not an HTTP status"},
		{"status-str", `magnet.status = "abc"`, "number expected"},
		{"request-ro", `magnet.request = {}`, "read-only"},
	}
	for _, f := range fails {
		mustFail(t, st, f.name, f.src, f.want)
	}
	// status errors are catchable; nil clears
	p := load(t, st, "pc", `
		local ok = pcall(function() magnet.status = 5 end)
		magnet.status = 404 magnet.status = nil
		local ok2 = pcall(function() magnet.request = 1 end)
		magnet.request.method = "changed"
		print(ok, ok2, tostring(magnet.status), magnet.request.method)`)
	if got := run(t, st, p, request("REQUEST_METHOD", "GET")); !strings.HasSuffix(got, "falsefalsenilchanged") {
		t.Fatalf("got %q", got)
	}
	// the next request sees a fresh request table and no headers
	q := load(t, st, "fresh", `print(magnet.request.method, tostring(magnet.status))`)
	if got := run(t, st, q, request("REQUEST_METHOD", "POST")); !strings.HasSuffix(got, "POSTnil") || strings.Contains(got, "X-") {
		t.Fatalf("state leaked: %q", got)
	}
}

func TestPrintToStringErrors(t *testing.T) {
	st := newState(t)
	c := load(t, st, "ts", `
		local boom = setmetatable({}, {__tostring = function() error("boom") end})
		local tbl = setmetatable({}, {__tostring = function() return {} end})
		local none = setmetatable({}, {__tostring = function() end})
		local num = setmetatable({}, {__tostring = function() return 42 end})
		local ok1, e1 = pcall(print, boom)
		local ok2, e2 = pcall(print, tbl)
		local ok3, e3 = pcall(print, none)
		print("|", ok1, " ", e1, "|", ok2, " ", e2, "|", ok3, "|", num)`)
	got := run(t, st, c, nil)
	for _, want := range []string{"|false ", "boom", "|false 'tostring' must return a string to 'print'", "|false|42"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
	mustFail(t, st, "uncaught-ts", `print(setmetatable({}, {__tostring = function() error("deep") end}))`, "deep")
	mustFail(t, st, "uncaught-ts2", `print(setmetatable({}, {__tostring = function() return true end}))`, "must return a string")
}

func TestErrorValues(t *testing.T) {
	st := newState(t)
	cases := []struct{ name, src, want string }{
		{"nil", `error()`, "nil"},
		{"nil2", `error(nil)`, "nil"},
		{"number", `error(42)`, "42"},
		{"bool", `error(false)`, "boolean"},
		{"table", `error({})`, "table"},
		{"tostring", `error(setmetatable({}, {__tostring = function() return "custom message" end}))`, "custom message"},
		{"tostring-err", `error(setmetatable({}, {__tostring = function() error("x") end}))`, "table"},
		{"tostring-nonstr", `error(setmetatable({}, {__tostring = function() return {} end}))`, "table"},
		{"function", `error(print)`, "function"},
	}
	for _, tc := range cases {
		mustFail(t, st, tc.name, tc.src, tc.want)
	}
	// a traceback accompanies non-string error objects too
	msg := mustFail(t, st, "/x/tb.lua", "local function f()\n error({})\nend\nf()\n", "table")
	if !strings.Contains(msg, "stack traceback") || !strings.Contains(msg, "tb.lua:2") {
		t.Errorf("no traceback for a table error: %q", msg)
	}
	// error values still reach pcall unchanged
	c := load(t, st, "pc", `
		local t = setmetatable({code = 7}, {__tostring = function() return "T" end})
		local ok, e = pcall(error, t)
		local ok2, e2 = pcall(error)
		print(e == t, e.code, tostring(e2), select("#", pcall(error)))`)
	if got := run(t, st, c, nil); got != "true7nil2" {
		t.Fatalf("got %q", got)
	}
}

func TestOsExit(t *testing.T) {
	st := newState(t)
	msg := mustFail(t, st, "exit", `print("partial") os.exit(3)`, "os.exit")
	if !strings.Contains(msg, "not allowed") {
		t.Errorf("message: %q", msg)
	}
	c := load(t, st, "pexit", `print(pcall(os.exit))`)
	if got := run(t, st, c, nil); !strings.HasPrefix(got, "false") {
		t.Fatalf("got %q", got)
	}
}

func TestCoroutines(t *testing.T) {
	st := newState(t)
	c := load(t, st, "co", `
		local co = coroutine.wrap(function(a)
			for i = 1, 3 do
				print("<", a + i, ">")
				a = coroutine.yield(i)
			end
			return "end"
		end)
		io.write(co(10), co(20), co(30), co(40))
		local gen = coroutine.create(function() local l = io.read("*l") coroutine.yield(l) print(magnet.fs.stat(".").type) error("inside") end)
		local ok, l = coroutine.resume(gen)
		local ok2, e2 = coroutine.resume(gen)
		print(" ", l, " ", ok2, " ", e2:match("inside") or e2, " ", coroutine.status(gen))
		-- a coroutine kept in _G is resumed by the next request
		_G.keep = _G.keep or coroutine.wrap(function() local n = 0 while true do n = n + 1 coroutine.yield(n) end end)
		print(" ", _G.keep())`)
	if got := run(t, st, c, bodyRequest("line1\nline2")); got != "<11><22><33>123enddirectory line1 false inside dead 1" {
		t.Fatalf("got %q", got)
	}
	if got := run(t, st, c, bodyRequest("a")); !strings.HasSuffix(got, " 2") {
		t.Fatalf("second run: %q", got)
	}
	mustFail(t, st, "yield-top", `coroutine.yield(1)`, "yield")
}

func TestRequireFromPackagePath(t *testing.T) {
	st := newState(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mymod.lua"), []byte(`
		local M = {loads = (_G.mymod_loads or 0) + 1}
		_G.mymod_loads = M.loads
		function M.greet(n) return "hi " .. n end
		return M`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := load(t, st, "req", `
		if not string.find(package.path, "`+dir+`", 1, true) then
			_G.package.path = "`+dir+`/?.lua;" .. package.path
		end
		local m = require("mymod")
		print(m.greet("x"), " ", m.loads, " ", package.loaded.mymod == m)`)
	for i := 0; i < 3; i++ {
		if got := run(t, st, c, nil); got != "hi x 1 true" {
			t.Fatalf("run %d: %q", i, got)
		}
	}
	mustFail(t, st, "req-missing", `require("no_such_module_here")`, "no_such_module_here")
}

func TestDumpAndLoadstring(t *testing.T) {
	st := newState(t)
	c := load(t, st, "dump", `
		local function add(a, b) return a + b end
		local f = loadstring(string.dump(add))
		local g = assert(loadstring("return 1 + ..."))
		local h, err = loadstring("syntax error here")
		x_in_env = 5
		local k = loadstring("return x_in_env")
		print(f(2, 3), " ", g(41), " ", h == nil and err ~= nil, " ", tostring(k()))`)
	if got := run(t, st, c, nil); got != "5 42 true nil" {
		t.Fatalf("got %q", got)
	}
}

func TestCollectGarbageInScript(t *testing.T) {
	st := newState(t)
	c := load(t, st, "gc", `
		local t = {}
		for i = 1, 10000 do t[i] = {i} end
		t = nil
		collectgarbage("collect")
		collectgarbage("step")
		print(magnet.fs.stat(".").type, " ", os.getenv("Q"), " ", collectgarbage("count") > 0)
		collectgarbage("collect")
		print(" ", magnet.request.query)`)
	for i := 0; i < 20; i++ {
		if got := run(t, st, c, request("Q", "v", "QUERY_STRING", "a=1")); got != "directory v true a=1" {
			t.Fatalf("run %d: %q", i, got)
		}
	}
}

func TestSetfenvMisuse(t *testing.T) {
	st := newState(t)
	mustFail(t, st, "fenv1", `setfenv(1, {}) print("x")`, "print")
	mustFail(t, st, "fenv2", `setfenv(2, {})`, "")
	// setfenv(0) replaces the thread's globals: later requests must not
	// inherit it (print, io.write, loadstring, require, os.getenv).
	c := load(t, st, "fenv0", `setfenv(0, {marker = true}) io.write("a") print("b")`)
	runErr(t, st, c, nil)
	after := load(t, st, "after0", `
		local f = loadstring("return marker, type(print)")
		local m, p = f()
		io.write(tostring(m), " ", p, " ", tostring(os.getenv("NOPE")), " ")
		io.stdout:write(type(require))`)
	if got := run(t, st, after, nil); got != "nil function nil function" {
		t.Fatalf("globals leaked from setfenv(0): %q", got)
	}
	if err := st.DoString(`assert(type(print) == "function" and marker == nil)`, "=check"); err != nil {
		t.Fatal(err)
	}
}

func TestSethookKeepsTimeLimit(t *testing.T) {
	if LuaJIT {
		t.Skip("LuaJIT does not run hooks in compiled loops: the time limit is best effort there")
	}
	st := newState(t)
	st.SetTimeout(200 * time.Millisecond)
	scripts := map[string]string{
		"clear":      `debug.sethook() while true do end`,
		"pclear":     `pcall(debug.sethook) while true do end`,
		"own":        `pcall(debug.sethook, function() end, "l") while true do end`,
		"coroutine":  `coroutine.wrap(function() pcall(debug.sethook) while true do end end)()`,
		"pcall-loop": `while true do pcall(function() while true do end end) end`,
		"xpcall":     `while true do xpcall(function() while true do end end, function(e) return e end) end`,
	}
	for name, src := range scripts {
		c := load(t, st, name, src)
		start := time.Now()
		msg, _ := runErr(t, st, c, nil)
		if msg == "" {
			t.Fatalf("%s: finished", name)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s: took %v", name, d)
		}
	}
	ok := load(t, st, "ok", `local n = 0 for i = 1, 1e5 do n = n + i end print(n)`)
	if got := run(t, st, ok, nil); got != "5000050000" {
		t.Fatalf("after: %q", got)
	}
	// the hook still fires after all that
	loop := load(t, st, "loop", `while true do end`)
	if msg, _ := runErr(t, st, loop, nil); !strings.Contains(msg, "time limit") {
		t.Fatalf("loop: %q", msg)
	}
}

// TestTimeoutTwoStates: each state's limit is its own; closing one state
// leaves the other's hook working.
func TestTimeoutTwoStates(t *testing.T) {
	if LuaJIT {
		t.Skip("LuaJIT does not run hooks in compiled loops")
	}
	a := newState(t)
	a.SetTimeout(200 * time.Millisecond)
	b, err := NewState()
	if err != nil {
		t.Fatal(err)
	}
	b.SetTimeout(0)
	b.Close()
	c := load(t, a, "loop", `while true do end`)
	done := make(chan string, 1)
	go func() {
		msg, _ := runErr(t, a, c, nil)
		done <- msg
	}()
	select {
	case msg := <-done:
		if !strings.Contains(msg, "time limit") {
			t.Fatalf("got %q", msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the time limit of state a was lost when state b was set up")
	}
}

// TestHugeOutput: a response larger than the buffer kept between requests
// is still there after Run.
func TestHugeOutput(t *testing.T) {
	st := newState(t)
	c := load(t, st, "huge", `print(string.rep("0123456789abcdef", tonumber(os.getenv("N"))))`)
	for _, n := range []string{"655360", "16", "524288", "1"} {
		if err := st.Run(c, request("N", n)); err != nil {
			t.Fatal(err)
		}
		want := strings.Repeat("0123456789abcdef", atoi(t, n))
		if got := string(st.Output()); got != want {
			t.Fatalf("N=%s: %d bytes, want %d", n, len(got), len(want))
		}
	}
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
