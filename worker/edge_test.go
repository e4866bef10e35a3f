package worker

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/protocol"
)

// Edge cases of the accept loop, over real sockets: big and slow
// responses, clients that vanish, aborts, management records, refused
// requests, request bodies and scripts that misbehave.

// rawConn is a FastCGI connection driven record by record.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, sock string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	return &rawConn{Conn: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

func (c *rawConn) send(t testing.TB, parts ...[]byte) {
	t.Helper()
	for _, p := range parts {
		if _, err := c.Write(p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

type record struct {
	typ     uint8
	id      uint16
	content []byte
}

func (c *rawConn) readRecord() (record, error) {
	var h [protocol.HeaderLen]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return record{}, err
	}
	hd := protocol.ParseHeader(h[:])
	b := make([]byte, int(hd.ContentLength)+int(hd.PaddingLength))
	if _, err := io.ReadFull(c.br, b); err != nil {
		return record{}, err
	}
	return record{typ: hd.Type, id: hd.RequestID, content: b[:hd.ContentLength]}, nil
}

// result is everything read up to the END_REQUEST of one request.
type result struct {
	stdout, stderr []byte
	stdoutRecords  int
	protoStatus    uint8
	before         []record // other records seen first (management, other ids)
}

func (r *result) status(t testing.TB) (int, string) {
	t.Helper()
	if len(r.stdout) == 0 {
		return 0, ""
	}
	st, _, body, err := protocol.ParseCGI(r.stdout)
	if err != nil {
		t.Fatalf("bad CGI response: %v (%q)", err, r.stdout)
	}
	return st, string(body)
}

// readEnd reads until the END_REQUEST of request id.
func (c *rawConn) readEnd(t testing.TB, id uint16) *result {
	t.Helper()
	r := &result{}
	for {
		rec, err := c.readRecord()
		if err != nil {
			t.Fatalf("reading the response to request %d: %v", id, err)
		}
		if rec.id != id {
			r.before = append(r.before, rec)
			continue
		}
		switch rec.typ {
		case protocol.TypeStdout:
			r.stdout = append(r.stdout, rec.content...)
			if len(rec.content) > 0 {
				r.stdoutRecords++
			}
		case protocol.TypeStderr:
			r.stderr = append(r.stderr, rec.content...)
		case protocol.TypeEndRequest:
			if len(rec.content) != 8 {
				t.Fatalf("END_REQUEST of %d bytes", len(rec.content))
			}
			r.protoStatus = rec.content[4]
			return r
		default:
			t.Fatalf("unexpected record type %d for request %d", rec.typ, id)
		}
	}
}

// expectClosed checks that the worker closed the connection.
func (c *rawConn) expectClosed(t testing.TB) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if rec, err := c.readRecord(); err == nil {
		t.Fatalf("connection still open: got record type %d", rec.typ)
	}
}

func begin(id uint16, keep bool, role uint16) []byte {
	var flags uint8
	if keep {
		flags = protocol.FlagKeepConn
	}
	return protocol.AppendBeginRequest(nil, id, role, flags)
}

// head is BEGIN_REQUEST (responder) and the complete PARAMS stream.
func head(id uint16, keep bool, script string, extra ...protocol.Pair) []byte {
	pairs := append([]protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: "POST"}}, extra...)
	return protocol.AppendParams(begin(id, keep, protocol.RoleResponder), id, pairs)
}

func stdin(id uint16, data []byte) []byte {
	return protocol.AppendStream(nil, protocol.TypeStdin, id, data)
}

func stdinEnd(id uint16) []byte { return protocol.AppendHeader(nil, protocol.TypeStdin, id, 0, 0) }

func abortReq(id uint16) []byte {
	return protocol.AppendHeader(nil, protocol.TypeAbortRequest, id, 0, 0)
}

func getValuesRecord() []byte {
	var c []byte
	for _, n := range []string{protocol.ValueMaxConns, protocol.ValueMaxReqs, protocol.ValueMpxsConns} {
		c = protocol.AppendPair(c, n, "")
	}
	return protocol.AppendRecord(nil, protocol.TypeGetValues, 0, c)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// edgeScripts writes the scripts the tests use into dir.
func edgeScripts(t testing.TB, dir string) map[string]string {
	t.Helper()
	src := map[string]string{
		"ok.lua":   `print("Content-Type: text/plain\r\n\r\nok")`,
		"big.lua":  `print("Content-Type: text/plain\r\n\r\n", string.rep("0123456789abcdef", tonumber(os.getenv("QUERY_STRING"))))`,
		"echo.lua": `local b = io.read("*a") print("Content-Type: text/plain\r\n\r\n", #b, ":", b:sub(1, 8), ":", b:sub(-8))`,
		"sum.lua": `
			local h, n, bytes = 0, 0, 0
			for l in io.lines() do n = n + 1 bytes = bytes + #l end
			print("Content-Type: text/plain\r\n\r\n", n, " ", bytes)`,
		"body.lua": `
			local mode = os.getenv("QUERY_STRING")
			local out = {}
			if mode == "n" then
				local a, b = io.read("*n", "*n")
				out[1] = a .. "," .. b .. "," .. io.read("*a")
			elseif mode == "zero" then
				out[1] = tostring(io.read(0)) .. "," .. io.read("*a") .. "," .. tostring(io.read(0))
			elseif mode == "lines" then
				for l in io.lines() do out[#out + 1] = "[" .. l .. "]" end
			elseif mode == "stdin" then
				for l in io.stdin:lines() do out[#out + 1] = "<" .. l .. ">" end
			end
			print("Content-Type: text/plain\r\n\r\n", table.concat(out))`,
		"ignore.lua": `print("Content-Type: text/plain\r\n\r\nignored")`,
		"struct.lua": `
			local mode = os.getenv("QUERY_STRING")
			if mode == "table" then
				magnet.header = {["X-Num"] = 42, ["X-List"] = {"a", 1.5}, ["Content-Type"] = "text/plain"}
				magnet.status = 201
			elseif mode == "badname" then
				magnet.header["Bad Name"] = "x"
			elseif mode == "badvalue" then
				magnet.header["X-Bad"] = "a\r\nInjected: yes"
			elseif mode == "status" then
				magnet.status = 1200
			elseif mode == "request" then
				magnet.request = {}
			end
			print("body:", mode)`,
		"exit.lua":      `print("Content-Type: text/plain\r\n\r\npartial") os.exit(1)`,
		"hook.lua":      `pcall(debug.sethook) while true do end`,
		"pcallhog.lua":  `while true do pcall(function() while true do end end) end`,
		"fenv0.lua":     `setfenv(0, {}) error("after setfenv 0")`,
		"fenvcheck.lua": `print("Content-Type: text/plain\r\n\r\n", loadstring("return type(print)")())`,
		"fenv1.lua":     `setfenv(1, {}) print("x")`,
		"errnil.lua":    `error()`,
		"errnum.lua":    `error(42)`,
		"errts.lua":     `error(setmetatable({}, {__tostring = function() return "custom error text" end}))`,
		"tostr.lua":     `print(setmetatable({}, {__tostring = function() error("tostring exploded") end}))`,
		"tostr2.lua":    `print(setmetatable({}, {__tostring = function() return {} end}))`,
		"lua.lua": `
			_G.package.path = os.getenv("MODDIR") .. "/?.lua;" .. package.path
			local m = require("edgemod")
			local co = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
			local f = loadstring(string.dump(function(a) return a * 2 end))
			collectgarbage("collect")
			print("Content-Type: text/plain\r\n\r\n", m.name, co(), co(), co(), f(21), collectgarbage("count") > 0)`,
		"edgemod.lua": `return {name = "mod"}`,
	}
	paths := map[string]string{}
	for name, s := range src {
		paths[name] = writeScript(t, dir, name, s)
	}
	return paths
}

// TestLargeResponses: responses of several STDOUT records and of 10 MiB,
// taken by a client that starts reading late and reads slowly, so that the
// worker's writes hit EAGAIN; a connection waiting meanwhile is answered.
func TestLargeResponses(t *testing.T) {
	dir := t.TempDir()
	sock, srv := startServer(t, Config{})
	s := edgeScripts(t, dir)
	for _, n := range []int{4096, 4097, 5000, 655360} { // 64 KiB, +16, 80000 bytes, 10 MiB
		c := dialRaw(t, sock)
		c.send(t, head(1, true, s["big.lua"], protocol.Pair{Name: "QUERY_STRING", Value: fmt.Sprint(n)}), stdinEnd(1))
		other := dialRaw(t, sock)
		other.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
		// The worker fills the socket buffer and waits for the client; a
		// response that fits answers the waiting connection too.
		stuck := inPoll(unix.POLLOUT)
		if 16*n < 1<<20 {
			stuck = either(stuck, inEpollWait(srv))
		}
		waitBlocked(t, fmt.Sprintf("n=%d: the worker waiting for the client", n), stuck)
		c.br = bufio.NewReaderSize(&slowReader{r: c.Conn}, 4096)
		r := c.readEnd(t, 1)
		if st, body := r.status(t); st != 200 || body != strings.Repeat("0123456789abcdef", n) {
			t.Fatalf("n=%d: status %d, %d body bytes", n, st, len(body))
		}
		if want := (16*n+40)/protocol.MaxContentLen + 1; r.stdoutRecords < want {
			t.Errorf("n=%d: %d STDOUT records, want at least %d", n, r.stdoutRecords, want)
		}
		if _, body := other.readEnd(t, 1).status(t); body != "ok" {
			t.Fatalf("waiting connection: %q", body)
		}
		// keep-alive: the big connection serves again
		c.send(t, head(2, true, s["ok.lua"]), stdinEnd(2))
		if _, body := c.readEnd(t, 2).status(t); body != "ok" {
			t.Fatalf("after big response: %q", body)
		}
	}
}

// slowReader hands out at most 8 KiB per read, pausing now and then.
type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	s.n++
	if s.n%64 == 0 {
		time.Sleep(time.Millisecond)
	}
	return s.r.Read(p[:min(len(p), 8<<10)])
}

// TestClientGone: clients that disconnect in the middle of a response, of
// params and of a body leave the worker serving.
func TestClientGone(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{IOTimeout: 20 * time.Second})
	s := edgeScripts(t, dir)
	idle := dialRaw(t, sock) // a keep-alive connection that must survive it all
	idle.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
	idle.readEnd(t, 1)

	alive := func(what string) {
		t.Helper()
		c, err := protocol.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, body, _ := get(t, c, s["ok.lua"], false); body != "ok" {
			t.Fatalf("after %s: %q", what, body)
		}
	}

	// mid-response: read a little of 10 MiB and go
	c := dialRaw(t, sock)
	c.send(t, head(1, true, s["big.lua"], protocol.Pair{Name: "QUERY_STRING", Value: "655360"}), stdinEnd(1))
	if _, err := io.ReadFull(c, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	alive("a client gone mid-response")

	// mid-response, before reading anything
	c = dialRaw(t, sock)
	c.send(t, head(1, false, s["big.lua"], protocol.Pair{Name: "QUERY_STRING", Value: "655360"}), stdinEnd(1))
	c.Close()
	alive("a client gone before the response")

	// mid-params: inside a record, and between records
	h := head(1, true, s["ok.lua"], protocol.Pair{Name: "X", Value: strings.Repeat("v", 3000)})
	for _, cut := range []int{3, 8 + 8 + 5, 8 + 8 + 100, len(h) - 8} {
		c = dialRaw(t, sock)
		c.send(t, h[:cut])
		c.Close()
		alive(fmt.Sprintf("a client gone after %d bytes of params", cut))
	}

	// mid-body: the script waits in io.read("*a")
	for _, cut := range []int{0, 100, 70000} {
		c = dialRaw(t, sock)
		body := stdin(1, bytes.Repeat([]byte("b"), 200000))
		c.send(t, head(1, true, s["echo.lua"]), body[:cut])
		waitBlocked(t, "the script waiting in io.read", inPoll(unix.POLLIN))
		c.Close()
		alive(fmt.Sprintf("a client gone after %d bytes of body", cut))
	}

	idle.send(t, head(2, true, s["ok.lua"]), stdinEnd(2))
	if _, body := idle.readEnd(t, 2).status(t); body != "ok" {
		t.Fatalf("idle keep-alive connection: %q", body)
	}
}

// TestAbortRequest: FCGI_ABORT_REQUEST before the params are complete and
// while the script reads the body is answered with END_REQUEST, and the
// connection goes on when FCGI_KEEP_CONN is set.
func TestAbortRequest(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	s := edgeScripts(t, dir)
	params := protocol.AppendParams(nil, 1, []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: s["echo.lua"]}})
	partial := params[:len(params)-8] // without the empty PARAMS record

	for _, keep := range []bool{true, false} {
		// before the params are complete
		c := dialRaw(t, sock)
		c.send(t, begin(1, keep, protocol.RoleResponder), partial, abortReq(1))
		r := c.readEnd(t, 1)
		if r.protoStatus != protocol.StatusRequestComplete || len(r.stdout) > 0 {
			t.Fatalf("keep=%v: abort before params: status %d, stdout %q", keep, r.protoStatus, r.stdout)
		}
		if keep {
			// the rest of the aborted request is ignored
			c.send(t, protocol.AppendHeader(nil, protocol.TypeParams, 1, 0, 0), stdin(1, []byte("late")), stdinEnd(1))
			c.send(t, head(2, true, s["ok.lua"]), stdinEnd(2))
			if _, body := c.readEnd(t, 2).status(t); body != "ok" {
				t.Fatalf("after abort: %q", body)
			}
		} else {
			c.expectClosed(t)
		}

		// while the script reads the body
		c = dialRaw(t, sock)
		c.send(t, head(1, keep, s["echo.lua"]), stdin(1, bytes.Repeat([]byte("x"), 100000)))
		waitBlocked(t, "the script waiting in io.read", inPoll(unix.POLLIN))
		c.send(t, abortReq(1))
		r = c.readEnd(t, 1)
		if r.protoStatus != protocol.StatusRequestComplete || len(r.stdout) > 0 {
			t.Fatalf("keep=%v: abort in body: status %d, stdout %q", keep, r.protoStatus, r.stdout)
		}
		if keep {
			c.send(t, stdin(1, []byte("late")), stdinEnd(1)) // ignored
			c.send(t, head(1, true, s["echo.lua"]), stdin(1, []byte("fresh body")), stdinEnd(1))
			if _, body := c.readEnd(t, 1).status(t); body != "10:fresh bo:esh body" {
				t.Fatalf("after abort in body: %q", body)
			}
		} else {
			c.expectClosed(t)
		}
	}

	// an abort after the response is ignored
	c := dialRaw(t, sock)
	c.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
	c.readEnd(t, 1)
	c.send(t, abortReq(1), head(2, true, s["ok.lua"]), stdinEnd(2))
	if r := c.readEnd(t, 2); len(r.before) != 0 {
		t.Fatalf("late abort answered: %+v", r.before)
	}
}

// TestGetValues: FCGI_GET_VALUES is answered between requests, before the
// params are complete and in the middle of a request body.
func TestGetValues(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	s := edgeScripts(t, dir)
	checkValues := func(recs []record) {
		t.Helper()
		if len(recs) != 1 || recs[0].typ != protocol.TypeGetValuesResult || recs[0].id != 0 {
			t.Fatalf("want one GET_VALUES_RESULT, got %+v", recs)
		}
		for _, n := range []string{protocol.ValueMaxConns, protocol.ValueMaxReqs, protocol.ValueMpxsConns} {
			if v, ok := protocol.Params(recs[0].content).Lookup(n); !ok || len(v) == 0 {
				t.Fatalf("%s missing in %q", n, recs[0].content)
			}
		}
	}

	cl := dial(t, sock)
	for i := 0; i < 3; i++ {
		vals, err := cl.GetValues(protocol.ValueMaxConns, protocol.ValueMpxsConns)
		if err != nil || vals[protocol.ValueMpxsConns] != "0" {
			t.Fatalf("between requests: %v %v", vals, err)
		}
		if _, body, _ := get(t, cl, s["ok.lua"], true); body != "ok" {
			t.Fatalf("got %q", body)
		}
	}

	c := dialRaw(t, sock)
	body := bytes.Repeat([]byte("0123456789"), 20000)
	h := head(1, true, s["echo.lua"])
	// inside the params, then in the body twice, then an unknown management type
	c.send(t, h[:len(h)-8], getValuesRecord(), h[len(h)-8:], stdin(1, body[:100000]))
	waitBlocked(t, "the script waiting in io.read", inPoll(unix.POLLIN))
	c.send(t, getValuesRecord(), stdin(1, body[100000:]), getValuesRecord(), stdinEnd(1))
	r := c.readEnd(t, 1)
	if _, got := r.status(t); got != "200000:01234567:23456789" {
		t.Fatalf("body with GET_VALUES inside: %q", got)
	}
	if len(r.before) != 3 {
		t.Fatalf("want 3 GET_VALUES_RESULT records, got %d", len(r.before))
	}
	for _, rec := range r.before {
		checkValues([]record{rec})
	}
	c.send(t, protocol.AppendRecord(nil, 42, 0, nil))
	rec, err := c.readRecord()
	if err != nil || rec.typ != protocol.TypeUnknownType || rec.content[0] != 42 {
		t.Fatalf("unknown management type: %+v %v", rec, err)
	}
}

// TestRefusedRequests: unknown roles, with and without FCGI_KEEP_CONN, and
// a second BEGIN_REQUEST while one is active.
func TestRefusedRequests(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	s := edgeScripts(t, dir)
	for _, role := range []uint16{protocol.RoleAuthorizer, protocol.RoleFilter, 77} {
		c := dialRaw(t, sock)
		params := protocol.AppendParams(nil, 1, []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: s["ok.lua"]}})
		c.send(t, begin(1, true, role), params, stdin(1, []byte("ignored")), stdinEnd(1))
		if r := c.readEnd(t, 1); r.protoStatus != protocol.StatusUnknownRole || len(r.stdout) > 0 {
			t.Fatalf("role %d: status %d", role, r.protoStatus)
		}
		c.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
		if _, body := c.readEnd(t, 1).status(t); body != "ok" {
			t.Fatalf("after role %d: %q", role, body)
		}
		c = dialRaw(t, sock)
		c.send(t, cat(begin(1, false, role), params, stdinEnd(1))) // one write: the worker closes after BEGIN_REQUEST
		if r := c.readEnd(t, 1); r.protoStatus != protocol.StatusUnknownRole {
			t.Fatalf("role %d without keep: status %d", role, r.protoStatus)
		}
		c.expectClosed(t)
	}

	// BEGIN_REQUEST for id 2 while 1 receives its params, then while the
	// script reads its body
	c := dialRaw(t, sock)
	h := head(1, true, s["echo.lua"])
	c.send(t, h[:len(h)-8], begin(2, true, protocol.RoleResponder), h[len(h)-8:], stdin(1, []byte("abc")))
	waitBlocked(t, "the script waiting in io.read", inPoll(unix.POLLIN))
	c.send(t, head(3, false, s["ok.lua"]), stdin(1, []byte("defghijk")), stdinEnd(1))
	r := c.readEnd(t, 1)
	if _, body := r.status(t); body != "11:abcdefgh:defghijk" {
		t.Fatalf("request 1: %q", body)
	}
	refused := map[uint16]uint8{}
	for _, rec := range r.before {
		if rec.typ == protocol.TypeEndRequest {
			refused[rec.id] = rec.content[4]
		}
	}
	if refused[2] != protocol.StatusCantMpxConn || refused[3] != protocol.StatusCantMpxConn {
		t.Fatalf("want CANT_MPX_CONN for 2 and 3, got %v (%d records)", refused, len(r.before))
	}
	c.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
	if _, body := c.readEnd(t, 1).status(t); body != "ok" {
		t.Fatalf("after CANT_MPX_CONN: %q", body)
	}
}

// TestBodyCases: io.read formats, io.lines and io.stdin:lines over the
// socket, a body larger than the socket buffers, and a 1 MiB body the
// script ignores followed by another request on the same connection.
func TestBodyCases(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	s := edgeScripts(t, dir)
	cl := dial(t, sock)
	cl.SetDeadline(time.Now().Add(60 * time.Second))
	do := func(script, query, body string) string {
		t.Helper()
		resp, err := cl.Do(&protocol.Request{KeepConn: true, Params: []protocol.Pair{
			{Name: "SCRIPT_FILENAME", Value: script}, {Name: "QUERY_STRING", Value: query}}, Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		st, _, out, err := protocol.ParseCGI(resp.Stdout)
		if err != nil || st != 200 {
			t.Fatalf("%s?%s: %d %v %q %s", script, query, st, err, resp.Stdout, resp.Stderr)
		}
		return string(out)
	}
	cases := []struct{ query, body, want string }{
		{"n", " 17\n-2.5e2 tail\n", "17,-250, tail\n"},
		{"zero", "abc", ",abc,nil"},
		{"zero", "", "nil,,nil"},
		{"lines", "a\n\nb\nlast", "[a][][b][last]"},
		{"lines", "", ""},
		{"stdin", "x\ny\n", "<x><y>"},
	}
	for _, tc := range cases {
		if got := do(s["body.lua"], tc.query, tc.body); got != tc.want {
			t.Errorf("%s %q: got %q, want %q", tc.query, tc.body, got, tc.want)
		}
	}
	// 8 MiB: larger than any socket buffer
	big := strings.Repeat("line of body text\n", 8<<20/18)
	if got := do(s["sum.lua"], "", big); got != fmt.Sprintf("%d %d", 8<<20/18, 8<<20/18*17) {
		t.Fatalf("sum: %q", got)
	}
	if got := do(s["echo.lua"], "", big); !strings.HasPrefix(got, fmt.Sprint(len(big))+":") {
		t.Fatalf("echo: %q", got)
	}
	// the script reads nothing of 1 MiB; keep-alive requests go on
	for i := 0; i < 3; i++ {
		if got := do(s["ignore.lua"], "", strings.Repeat("z", 1<<20)); got != "ignored" {
			t.Fatalf("ignore: %q", got)
		}
		if got := do(s["echo.lua"], "", "next"); got != "4:next:next" {
			t.Fatalf("after an unread body: %q", got)
		}
	}
	// the same, with the whole request written before the response is read
	c := dialRaw(t, sock)
	c.send(t, head(1, true, s["ignore.lua"]), stdin(1, bytes.Repeat([]byte("z"), 1<<20)), stdinEnd(1),
		head(2, true, s["echo.lua"]), stdin(2, []byte("second")), stdinEnd(2))
	c.readEnd(t, 1)
	if _, body := c.readEnd(t, 2).status(t); body != "6:second:second" {
		t.Fatalf("pipelined after an unread body: %q", body)
	}
}

// TestStructuredOverSocket: the structured API's failures are clean 500
// responses and the connection goes on.
func TestStructuredOverSocket(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	s := edgeScripts(t, dir)
	cl := dial(t, sock)
	status, body, resp := get(t, cl, s["struct.lua"], true, protocol.Pair{Name: "QUERY_STRING", Value: "table"})
	if status != 201 || body != "body:table" || !bytes.Contains(resp.Stdout, []byte("X-Num: 42\r\n")) ||
		!bytes.Contains(resp.Stdout, []byte("X-List: a\r\nX-List: 1.5\r\n")) || !bytes.Contains(resp.Stdout, []byte("Content-Type: text/plain\r\n")) {
		t.Fatalf("table: %d %q", status, resp.Stdout)
	}
	for _, mode := range []string{"badname", "badvalue", "status", "request"} {
		status, body, resp := get(t, cl, s["struct.lua"], true, protocol.Pair{Name: "QUERY_STRING", Value: mode})
		if status != 500 || strings.Contains(body, "body:") || bytes.Contains(resp.Stdout, []byte("Injected")) || len(resp.Stderr) == 0 {
			t.Fatalf("%s: %d %q %q", mode, status, resp.Stdout, resp.Stderr)
		}
	}
	if _, body, _ := get(t, cl, s["ok.lua"], true); body != "ok" {
		t.Fatalf("after: %q", body)
	}
}

// TestManyConnections: 500 keep-alive connections opened at once, each
// sending a request before any response is read, for several rounds.
func TestManyConnections(t *testing.T) {
	dir := t.TempDir()
	s := edgeScripts(t, dir)
	sock := filepath.Join(t.TempDir(), "m.sock")
	fd, err := Listen(sock, 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{ListenFD: fd})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	defer func() {
		srv.Shutdown()
		if err := <-done; err != nil {
			t.Error(err)
		}
		srv.Close()
	}()
	const n = 500
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialRaw(t, sock)
	}
	for round := 0; round < 3; round++ {
		for i, c := range conns {
			id := uint16(i%7 + 1)
			c.send(t, head(id, true, s["echo.lua"]), stdin(id, []byte(fmt.Sprintf("c%04dr%d", i, round))), stdinEnd(id))
		}
		for i, c := range conns {
			want := fmt.Sprintf("c%04dr%d", i, round)
			if _, body := c.readEnd(t, uint16(i%7+1)).status(t); body != fmt.Sprintf("%d:%s:%s", len(want), want, want) {
				t.Fatalf("round %d conn %d: %q", round, i, body)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestMisbehavingScripts: scripts that exit, clear hooks, replace their
// environment or raise odd error values get a 500 and the worker goes on.
func TestMisbehavingScripts(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{Timeout: 300 * time.Millisecond, Debug: true})
	s := edgeScripts(t, dir)
	cl := dial(t, sock)
	cl.SetDeadline(time.Now().Add(60 * time.Second))
	cases := []struct{ script, stderr string }{
		{"exit.lua", "os.exit"},
		{"fenv0.lua", "after setfenv 0"},
		{"fenv1.lua", "print"},
		{"errnil.lua", "nil"},
		{"errnum.lua", "42"},
		{"errts.lua", "custom error text"},
		{"tostr.lua", "tostring exploded"},
		{"tostr2.lua", "must return a string"},
	}
	if !luabind.LuaJIT {
		cases = append(cases, struct{ script, stderr string }{"hook.lua", "time limit"},
			struct{ script, stderr string }{"pcallhog.lua", "time limit"})
	}
	for _, tc := range cases {
		status, body, resp := get(t, cl, s[tc.script], true)
		if status != 500 || strings.Contains(body, "partial") || !strings.Contains(string(resp.Stderr), tc.stderr) {
			t.Errorf("%s: %d %q stderr %q", tc.script, status, resp.Stdout, resp.Stderr)
		}
		if _, body, _ := get(t, cl, s["ok.lua"], true); body != "ok" {
			t.Fatalf("after %s: %q", tc.script, body)
		}
		if _, body, _ := get(t, cl, s["fenvcheck.lua"], true); body != "function" {
			t.Fatalf("globals after %s: %q", tc.script, body)
		}
	}
	status, body, resp := get(t, cl, s["lua.lua"], true, protocol.Pair{Name: "MODDIR", Value: dir})
	if status != 200 || body != "mod12342true" {
		t.Fatalf("lua.lua: %d %q %q", status, body, resp.Stderr)
	}
}

// TestUnreadBodyWithoutKeepConn: a script that ignores a large body on a
// connection without FCGI_KEEP_CONN; the web server, still writing the
// body, must not see its writes fail (a reset connection makes nginx
// answer 502 although the response came).
func TestUnreadBodyWithoutKeepConn(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	s := edgeScripts(t, dir)
	for i := 0; i < 3; i++ {
		c := dialRaw(t, sock)
		req := cat(head(1, false, s["ignore.lua"]), stdin(1, bytes.Repeat([]byte("z"), 2<<20)), stdinEnd(1))
		werr := make(chan error, 1)
		go func() {
			// write in pieces, as a web server streaming a body does
			var err error
			for p := req; len(p) > 0 && err == nil; {
				n := min(len(p), 16<<10)
				_, err = c.Write(p[:n])
				p = p[n:]
			}
			werr <- err
		}()
		if _, body := c.readEnd(t, 1).status(t); body != "ignored" {
			t.Fatalf("got %q", body)
		}
		if err := <-werr; err != nil {
			t.Fatalf("writing the body the script ignored: %v", err)
		}
		c.expectClosed(t)
	}
}

// TestStalledClients: a client that stops taking its response, or stops
// sending its body, is dropped after IOTimeout and the others are served.
func TestStalledClients(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{IOTimeout: 300 * time.Millisecond})
	s := edgeScripts(t, dir)

	stalled := dialRaw(t, sock)
	stalled.send(t, head(1, true, s["big.lua"], protocol.Pair{Name: "QUERY_STRING", Value: "655360"}), stdinEnd(1))
	other := dialRaw(t, sock)
	other.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
	if _, body := other.readEnd(t, 1).status(t); body != "ok" {
		t.Fatalf("behind a stalled client: %q", body)
	}
	// the stalled connection was closed: reading it ends before 10 MiB
	n, _ := io.Copy(io.Discard, stalled)
	if n >= 10<<20 {
		t.Fatalf("stalled client got the whole response (%d bytes)", n)
	}

	slow := dialRaw(t, sock)
	slow.send(t, head(1, true, s["echo.lua"]), stdin(1, []byte("part of a body")))
	r := slow.readEnd(t, 1)
	if st, _ := r.status(t); st != 500 || len(r.stderr) == 0 {
		t.Fatalf("body that stopped coming: status %d %q", st, r.stdout)
	}
	other.send(t, head(2, true, s["ok.lua"]), stdinEnd(2))
	if _, body := other.readEnd(t, 2).status(t); body != "ok" {
		t.Fatalf("after a stalled body: %q", body)
	}
}
