package devhttp

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// serveFront serves root through a Front dialling the application with
// dial, over httptest, until the test ends.
func serveFront(t testing.TB, root string, dial func() (net.Conn, error), opts ...Option) *httptest.Server {
	t.Helper()
	f, err := New(root, dial, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		f.Close()
	})
	return srv
}

// stdFront serves a document root through the net/http/fcgi responder.
func stdFront(t *testing.T, release chan struct{}, opts ...Option) (*httptest.Server, string) {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"env.lua":          "",
		"echo.lua":         "",
		"stream.lua":       "",
		"app/index.lua":    "",
		"style.css":        "body { color: red }\n",
		"noindex/file.txt": "x",
	})
	srv := serveFront(t, root, stdResponder(t, release), opts...)
	real, _ := filepath.EvalSymlinks(root)
	return srv, real
}

func envOf(t *testing.T, body string) dump {
	t.Helper()
	var d dump
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("%v: %q", err, body)
	}
	return d
}

func TestCGIParams(t *testing.T) {
	rr := paramsResponder()
	srv, root := rawFront(t, rr)
	u, _ := url.Parse(srv.URL)
	req, _ := http.NewRequest("POST", srv.URL+"/env.lua/extra/path?a=1&b=%20", strings.NewReader("x=1&y=2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Custom-Thing", "v1")
	req.Header.Add("Cookie", "a=1")
	req.Header.Add("Cookie", "b=2")
	req.Header.Add("Accept", "text/html")
	req.Header.Add("Accept", "text/plain")
	req.Header.Set("Proxy", "http://evil.example/")
	req.Header.Set("X_Under", "spoof")
	resp, body := do(t, req)
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	env := rr.last()
	want := map[string]string{
		"GATEWAY_INTERFACE":   "CGI/1.1",
		"SERVER_SOFTWARE":     "magnetd",
		"SERVER_PROTOCOL":     "HTTP/1.1",
		"REQUEST_METHOD":      "POST",
		"REQUEST_URI":         "/env.lua/extra/path?a=1&b=%20",
		"QUERY_STRING":        "a=1&b=%20",
		"SCRIPT_FILENAME":     filepath.Join(root, "env.lua"),
		"SCRIPT_NAME":         "/env.lua",
		"PATH_INFO":           "/extra/path",
		"PATH_TRANSLATED":     root + "/extra/path",
		"DOCUMENT_ROOT":       root,
		"SERVER_NAME":         u.Hostname(),
		"SERVER_PORT":         u.Port(),
		"SERVER_ADDR":         "127.0.0.1",
		"REMOTE_ADDR":         "127.0.0.1",
		"REQUEST_SCHEME":      "http",
		"CONTENT_TYPE":        "application/x-www-form-urlencoded",
		"CONTENT_LENGTH":      "7",
		"HTTP_HOST":           u.Host,
		"HTTP_X_CUSTOM_THING": "v1",
		"HTTP_COOKIE":         "a=1; b=2",
		"HTTP_ACCEPT":         "text/html, text/plain",
		"STDIN":               "x=1&y=2",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"HTTPS", "HTTP_PROXY", "HTTP_X_UNDER", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s passed: %q", k, v)
		}
	}
	if env["REMOTE_PORT"] == "" {
		t.Error("no REMOTE_PORT")
	}

	// Without a body: no CONTENT_LENGTH or PATH_INFO.
	get(t, srv.URL+"/env.lua")
	env = rr.last()
	for _, k := range []string{"CONTENT_LENGTH", "PATH_INFO", "PATH_TRANSLATED"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s passed: %q", k, v)
		}
	}
}

func TestHTTPS(t *testing.T) {
	rr := paramsResponder()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"env.lua": ""})
	f, err := New(root, rr.start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/env.lua")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if env := rr.last(); env["HTTPS"] != "on" || env["REQUEST_SCHEME"] != "https" {
		t.Errorf("HTTPS %q scheme %q", env["HTTPS"], env["REQUEST_SCHEME"])
	}
}

func TestPaths(t *testing.T) {
	rr := paramsResponder()
	srv, _ := rawFront(t, rr)
	cases := []struct {
		path       string
		status     int
		scriptName string
		pathInfo   string
	}{
		{"/env.lua", 200, "/env.lua", ""},
		{"/env.lua/", 200, "/env.lua", "/"},
		{"/app/", 200, "/app/index.lua", ""},
		{"/app", 301, "", ""},
		{"/app/index.lua/x", 200, "/app/index.lua", "/x"},
		{"/missing.lua", 404, "", ""},
		{"/app/missing/x", 404, "", ""},
		{"/noindex/", 403, "", ""},
		{"/style.css/x", 404, "", ""},
		{"/%2e%2e/etc/passwd", 403, "", ""},
		{"/app/%2E%2E/%2e%2e/x.lua", 403, "", ""},
	}
	for _, c := range cases {
		resp, body := get(t, srv.URL+c.path)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.path, resp.StatusCode, c.status, body)
			continue
		}
		if c.status == 301 {
			if loc := resp.Header.Get("Location"); loc != c.path+"/" {
				t.Errorf("%s: Location %q", c.path, loc)
			}
		}
		if c.scriptName == "" {
			continue
		}
		env := rr.last()
		if env["SCRIPT_NAME"] != c.scriptName || env["PATH_INFO"] != c.pathInfo {
			t.Errorf("%s: SCRIPT_NAME %q PATH_INFO %q, want %q %q", c.path, env["SCRIPT_NAME"], env["PATH_INFO"], c.scriptName, c.pathInfo)
		}
	}
}

// A raw ".." in the request line, which http.Client would clean away.
func TestDotDotRaw(t *testing.T) {
	srv, _ := stdFront(t, nil)
	u, _ := url.Parse(srv.URL)
	req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: u.Host, Opaque: "/app/../../etc/passwd"}, Header: http.Header{}}
	resp, body := do(t, req)
	if resp.StatusCode != 403 {
		t.Errorf("status %d: %s", resp.StatusCode, body)
	}
}

func TestStatic(t *testing.T) {
	srv, _ := stdFront(t, nil)
	resp, body := get(t, srv.URL+"/style.css")
	if resp.StatusCode != 200 || body != "body { color: red }\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/style.css", nil)
	req.Header.Set("If-Modified-Since", resp.Header.Get("Last-Modified"))
	if resp, _ := do(t, req); resp.StatusCode != 304 {
		t.Errorf("conditional GET: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/style.css", strings.NewReader("x"))
	if resp, _ := do(t, req); resp.StatusCode != 405 {
		t.Errorf("POST to a static file: %d", resp.StatusCode)
	}
}

// The request body goes to the application as it is sent, and the answer
// comes back as it is written.
func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	srv, _ := stdFront(t, release)

	// Response: the first part arrives while the application still holds
	// the second.
	resp, err := client.Get(srv.URL + "/stream.lua")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first part: %q %v", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second\n" {
		t.Fatalf("second part %q", rest)
	}

	// Request body of unknown length (chunked), larger than a record.
	pr, pw := io.Pipe()
	big := strings.Repeat("0123456789abcdef", 40000) // 640 KB
	go func() {
		for i := 0; i < len(big); i += 100000 {
			pw.Write([]byte(big[i:min(i+100000, len(big))]))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", srv.URL+"/echo.lua", pr)
	resp2, body := do(t, req)
	if resp2.StatusCode != 200 || body != big {
		t.Fatalf("echo: status %d, %d bytes back of %d", resp2.StatusCode, len(body), len(big))
	}
}

func rawFront(t testing.TB, rr *rawResponder, opts ...Option) (*httptest.Server, string) {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{"style.css": "body { color: red }\n", "noindex/file.txt": "x"}
	for name := range rr.answers {
		files[name] = ""
	}
	writeFiles(t, root, files)
	srv := serveFront(t, root, rr.start(t), opts...)
	real, _ := filepath.EvalSymlinks(root)
	return srv, real
}

// paramsResponder answers every script with "ok" and records the params.
func paramsResponder() *rawResponder {
	ok := [2]string{"Content-Type: text/plain\r\n\r\nok", ""}
	return &rawResponder{answers: map[string][2]string{"/env.lua": ok, "/app/index.lua": ok}}
}

func TestCGIResponses(t *testing.T) {
	logs := &logBuffer{}
	rr := &rawResponder{answers: map[string][2]string{
		"/status.lua":    {"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nnope", ""},
		"/abs.lua":       {"Location: http://example.com/x\r\n\r\n", ""},
		"/local.lua":     {"Location: /target.lua?from=local\r\n\r\nignored", ""},
		"/target.lua":    {"Content-Type: text/plain\r\n\r\ntarget", ""},
		"/seeother.lua":  {"Status: 303 See Other\r\nLocation: /target.lua\r\n\r\n", ""},
		"/loop.lua":      {"Location: /loop.lua\r\n\r\n", ""},
		"/notype.lua":    {"X-B: 2\n\nhello", ""},
		"/empty.lua":     {"Status: 204\r\n\r\n", ""},
		"/nohead.lua":    {"no header block", ""},
		"/badstatus.lua": {"Status: abc\r\n\r\n", ""},
		"/stderr.lua":    {"Content-Type: text/plain\r\n\r\nok", "first line\nsecond line\npartial"},
	}}
	srv, _ := rawFront(t, rr, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))

	resp, body := get(t, srv.URL+"/status.lua")
	if resp.StatusCode != 404 || body != "nope" || resp.Header.Get("X-A") != "1" || resp.Header.Get("Status") != "" {
		t.Errorf("status.lua: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = get(t, srv.URL+"/abs.lua")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://example.com/x" {
		t.Errorf("abs.lua: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = get(t, srv.URL+"/local.lua")
	if resp.StatusCode != 200 || body != "target" {
		t.Errorf("local.lua: %d %q", resp.StatusCode, body)
	}
	if p := rr.last(); p["SCRIPT_NAME"] != "/target.lua" || p["QUERY_STRING"] != "from=local" || p["REQUEST_METHOD"] != "GET" || p["REQUEST_URI"] != "/target.lua?from=local" {
		t.Errorf("local redirect params %v", p)
	}
	resp, _ = get(t, srv.URL+"/seeother.lua")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/target.lua" {
		t.Errorf("seeother.lua: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get(t, srv.URL+"/loop.lua")
	if resp.StatusCode != 500 {
		t.Errorf("loop.lua: %d", resp.StatusCode)
	}
	resp, body = get(t, srv.URL+"/notype.lua")
	if resp.StatusCode != 200 || body != "hello" || resp.Header.Get("Content-Type") != "text/html" || resp.Header.Get("X-B") != "2" {
		t.Errorf("notype.lua: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, srv.URL+"/empty.lua")
	if resp.StatusCode != 204 || body != "" {
		t.Errorf("empty.lua: %d %q", resp.StatusCode, body)
	}
	for _, p := range []string{"/nohead.lua", "/badstatus.lua"} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != 502 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	resp, body = get(t, srv.URL+"/stderr.lua")
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("stderr.lua: %d %q", resp.StatusCode, body)
	}
	for _, line := range []string{"first line", "second line", "partial"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs.String())
		}
	}
}

func TestKeepAlive(t *testing.T) {
	rr := &rawResponder{answers: map[string][2]string{"/a.lua": {"Content-Type: text/plain\r\n\r\na", ""}}}
	srv, _ := rawFront(t, rr)
	for range 20 {
		if resp, body := get(t, srv.URL+"/a.lua"); resp.StatusCode != 200 || body != "a" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}
	if n := rr.conns.Load(); n != 1 {
		t.Errorf("%d FastCGI connections for 20 sequential requests, want 1", n)
	}
	if p := rr.last(); p["SCRIPT_NAME"] != "/a.lua" {
		t.Errorf("params %v", p)
	}
}

// An application that closes kept connections (a worker that exited
// between requests): the front retries once on a new connection.
func TestRetryClosedConn(t *testing.T) {
	rr := &rawResponder{closeAfter: true, answers: map[string][2]string{"/a.lua": {"Content-Type: text/plain\r\n\r\na", ""}}}
	srv, _ := rawFront(t, rr)
	for i := range 10 {
		if resp, body := get(t, srv.URL+"/a.lua"); resp.StatusCode != 200 || body != "a" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := rr.conns.Load(); n < 10 {
		t.Errorf("%d connections for 10 requests on closing connections", n)
	}
}

func TestNoApplication(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a.lua": ""})
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	srv := serveFront(t, root, func() (net.Conn, error) { return net.Dial("unix", sock) },
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if resp, _ := get(t, srv.URL+"/a.lua"); resp.StatusCode != 502 {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if _, err := New(filepath.Join(root, "missing"), nil); err == nil {
		t.Error("missing document root accepted")
	}
	h := Handler(filepath.Join(root, "missing"), nil, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/a.lua", nil))
	if rec.Code != 500 {
		t.Errorf("missing root: %d", rec.Code)
	}
}

// A third-party FastCGI responder (net/http/fcgi) decodes the request the
// front sends into the same HTTP request.
func TestInterop(t *testing.T) {
	srv, root := stdFront(t, nil)
	u, _ := url.Parse(srv.URL)
	req, _ := http.NewRequest("POST", srv.URL+"/env.lua?q=1", strings.NewReader("hello"))
	req.Header.Set("X-Custom-Thing", "v1")
	req.Header.Set("Content-Type", "text/plain")
	resp, body := do(t, req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	d := envOf(t, body)
	if d.Method != "POST" || d.Body != "hello" || d.Host != u.Host || !strings.HasPrefix(d.RemoteAddr, "127.0.0.1:") {
		t.Errorf("request %+v", d)
	}
	if d.Header.Get("X-Custom-Thing") != "v1" || d.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("header %v", d.Header)
	}
	if d.Env["SCRIPT_FILENAME"] != filepath.Join(root, "env.lua") || d.Env["DOCUMENT_ROOT"] != root {
		t.Errorf("env %v", d.Env)
	}
}

// A symlink that leads out of the document root is refused.
func TestSymlinkEscape(t *testing.T) {
	rr := paramsResponder()
	rr.answers["/alias.lua"] = rr.answers["/env.lua"]
	root := t.TempDir()
	outside := t.TempDir()
	writeFiles(t, root, map[string]string{"env.lua": ""})
	writeFiles(t, outside, map[string]string{"secret.txt": "secret", "x.lua": ""})
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("env.lua", filepath.Join(root, "alias.lua")); err != nil {
		t.Fatal(err)
	}
	srv := serveFront(t, root, rr.start(t))
	for _, p := range []string{"/out/secret.txt", "/out/x.lua"} {
		if resp, body := get(t, srv.URL+p); resp.StatusCode != 403 {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, srv.URL+"/alias.lua"); resp.StatusCode != 200 {
		t.Errorf("symlink inside the root: %d", resp.StatusCode)
	}
}
