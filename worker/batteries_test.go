package worker

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"log/slog"

	"github.com/magnet-fcgi/magnet/protocol"
)

// syncBuffer is a log buffer the worker's goroutine writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestBatteries: the response helpers, JSON, logging and the response
// rules through a real worker; bad input fails the request alone.
func TestBatteries(t *testing.T) {
	dir := t.TempDir()
	var log syncBuffer
	init := writeScript(t, dir, "init.lua", `greeting = "hi from init" magnet.log("info", "init ran")`)
	sock, _ := startServer(t, Config{Init: init, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	cl := dial(t, sock)
	s := func(name, src string) string { return writeScript(t, dir, name, src) }
	q := func(v string) protocol.Pair { return protocol.Pair{Name: "QUERY_STRING", Value: v} }

	init1 := s("init1.lua", `magnet.status = 200 io.write(greeting)`)
	if status, body, _ := get(t, cl, init1, true); status != 200 || body != "hi from init" {
		t.Fatalf("init: %d %q", status, body)
	}

	redirect := s("redirect.lua", `magnet.redirect(magnet.unescape_uri(magnet.request.query))`)
	status, _, resp := get(t, cl, redirect, true, q("%2Fnext"))
	if status != 302 || !bytes.HasPrefix(resp.Stdout, []byte("Status: 302 Found\r\n")) || !bytes.Contains(resp.Stdout, []byte("Location: /next\r\n")) {
		t.Fatalf("redirect: %q", resp.Stdout)
	}
	status, _, resp = get(t, cl, redirect, true, q("%2Fnext%0D%0ASet-Cookie:%20x=1"))
	if status != 500 || bytes.Contains(resp.Stdout, []byte("Set-Cookie")) || !bytes.Contains(resp.Stderr, []byte("control character")) {
		t.Fatalf("redirect with CR LF: %d %q %q", status, resp.Stdout, resp.Stderr)
	}

	js := s("json.lua", `local v = magnet.json.decode(magnet.unescape_uri(magnet.request.query))
		magnet.header["Content-Type"] = "application/json"
		io.write(magnet.json.encode({got = v, empty = {}}))`)
	if status, body, _ := get(t, cl, js, true, q("%5B1%2Cnull%5D")); status != 200 || (body != `{"got":[1,null],"empty":{}}` && body != `{"empty":{},"got":[1,null]}`) {
		t.Fatalf("json: %d %q", status, body)
	}
	if status, _, resp := get(t, cl, js, true, q("%7Bnope")); status != 500 || len(resp.Stderr) == 0 {
		t.Fatalf("malformed json: %d %q", status, resp.Stdout)
	}

	logs := s("log.lua", `magnet.log("warn", "careful: ", 42) magnet.log("info", "quiet") magnet.status = 200 io.write("logged")`)
	status, body, resp := get(t, cl, logs, true, protocol.Pair{Name: "REQUEST_URI", Value: "/log.lua?x"})
	if status != 200 || body != "logged" || !bytes.Contains(resp.Stderr, []byte("WARN: careful: 42\n")) || bytes.Contains(resp.Stderr, []byte("quiet")) {
		t.Fatalf("log: %d %q %q", status, body, resp.Stderr)
	}
	if l := log.String(); !strings.Contains(l, `msg="careful: 42" script=`+logs+` uri=/log.lua?x pid=`) || !strings.Contains(l, "init ran") {
		t.Fatalf("log lines: %s", l)
	}

	cl1 := s("length.lua", `magnet.header["Content-Length"] = magnet.request.query print("hello")`)
	if status, body, _ := get(t, cl, cl1, true, q("5")); status != 200 || body != "hello" {
		t.Fatalf("right Content-Length: %d %q", status, body)
	}
	if status, _, resp := get(t, cl, cl1, true, q("3")); status != 500 || !bytes.Contains(resp.Stderr, []byte("Content-Length 3 but its body has 5 bytes")) {
		t.Fatalf("short Content-Length: %d %q %q", status, resp.Stdout, resp.Stderr)
	}
	raw := s("raw.lua", `io.write("Status: 200\r\nContent-Length: 10\r\n\r\nshort")`)
	if status, _, _ := get(t, cl, raw, true); status != 500 {
		t.Fatalf("printed Content-Length: %d", status)
	}

	nobody := s("nobody.lua", `magnet.status = 204 print("dropped")`)
	_, _, resp = get(t, cl, nobody, true)
	if string(resp.Stdout) != "Status: 204 No Content\r\n\r\n" {
		t.Fatalf("204: %q", resp.Stdout)
	}

	cookie := s("cookie.lua", `magnet.set_cookie("a", magnet.request.query, {http_only = true}) magnet.exit(200, "set")`)
	if status, body, resp := get(t, cl, cookie, true, q("1")); status != 200 || body != "set" || !bytes.Contains(resp.Stdout, []byte("Set-Cookie: a=1; HttpOnly\r\n")) {
		t.Fatalf("cookie: %d %q", status, resp.Stdout)
	}
	if status, _, resp := get(t, cl, cookie, true, q("a;b")); status != 500 || !bytes.Contains(resp.Stderr, []byte("invalid value")) {
		t.Fatalf("bad cookie: %d %q", status, resp.Stderr)
	}
	// the worker is fine after all of it
	if status, body, _ := get(t, cl, init1, true); status != 200 || body != "hi from init" {
		t.Fatalf("after: %d %q", status, body)
	}
}

// TestInitError: an --init file that fails fails the worker's start, with
// the error.
func TestInitError(t *testing.T) {
	dir := t.TempDir()
	bad := writeScript(t, dir, "init.lua", `error("no database")`)
	fd, err := Listen(filepath.Join(dir, "w.sock"), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(dir, "w.sock"))
	if _, err := New(Config{ListenFD: fd, Init: bad}); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Fatalf("New with a failing init: %v", err)
	}
	if _, err := New(Config{ListenFD: fd, Init: filepath.Join(dir, "missing.lua")}); err == nil {
		t.Fatal("New with a missing init file passed")
	}
}

// TestExamples runs examples/json-api.lua and examples/form.lua.
func TestExamples(t *testing.T) {
	sock, _ := startServer(t, Config{})
	root, _ := filepath.Abs("../examples")
	cl := dial(t, sock)
	api := filepath.Join(root, "json-api.lua")
	if status, body, _ := get(t, cl, api, true); status != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("empty list: %d %q", status, body)
	}
	post := func(script, ctype, body string, extra ...protocol.Pair) (int, *protocol.Response) {
		params := append([]protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: "POST"},
			{Name: "CONTENT_TYPE", Value: ctype}, {Name: "CONTENT_LENGTH", Value: strconv.Itoa(len(body))}}, extra...)
		resp, err := cl.Do(&protocol.Request{KeepConn: true, Params: params, Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		status, _, _, err := protocol.ParseCGI(resp.Stdout)
		if err != nil {
			t.Fatalf("%v: %q", err, resp.Stdout)
		}
		return status, resp
	}
	if status, resp := post(api, "application/json", `{"text":"<b>"}`); status != 201 || !bytes.Contains(resp.Stdout, []byte(`"text":"<b>"`)) {
		t.Fatalf("post: %d %q", status, resp.Stdout)
	}
	if status, resp := post(api, "application/json", `{"text":`); status != 400 || !bytes.Contains(resp.Stdout, []byte(`"error"`)) {
		t.Fatalf("bad post: %d %q", status, resp.Stdout)
	}
	form := filepath.Join(root, "form.lua")
	status, resp := post(form, "application/x-www-form-urlencoded", "name=%3Cscript%3E+Bob", protocol.Pair{Name: "SCRIPT_NAME", Value: "/form.lua"})
	if status != 303 || !bytes.Contains(resp.Stdout, []byte("Location: /form.lua\r\n")) ||
		!bytes.Contains(resp.Stdout, []byte("Set-Cookie: name=%3Cscript%3E%20Bob; Path=/; HttpOnly; SameSite=Lax\r\n")) {
		t.Fatalf("form post: %d %q", status, resp.Stdout)
	}
	_, body, _ := get(t, cl, form, true, protocol.Pair{Name: "HTTP_COOKIE", Value: "name=%3Cscript%3E%20Bob"})
	if !strings.Contains(body, "Hello, &lt;script&gt; Bob!") {
		t.Fatalf("form page: %q", body)
	}
}
