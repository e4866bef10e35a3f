package devhttp

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/magnet-fcgi/magnet/protocol"
)

// writeFiles creates files (name → content) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// unixListener listens on a new unix socket and returns a dial function
// for it.
func unixListener(t testing.TB) (net.Listener, func() (net.Conn, error)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fcgi.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, func() (net.Conn, error) { return net.Dial("unix", path) }
}

// dump is what the net/http/fcgi responder reports about a request.
type dump struct {
	Method     string
	RequestURI string
	Host       string
	RemoteAddr string
	Header     http.Header
	Env        map[string]string
	Body       string
}

// stdResponder serves FastCGI with net/http/fcgi: env.lua reports the
// request, echo.lua streams the body back, stream.lua sends a first part
// and waits for release before the second.
func stdResponder(t *testing.T, release <-chan struct{}) func() (net.Conn, error) {
	ln, dial := unixListener(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := fcgi.ProcessEnv(r)
		switch filepath.Base(env["SCRIPT_FILENAME"]) {
		case "echo.lua":
			w.Header().Set("Content-Type", "application/octet-stream")
			io.Copy(w, r.Body)
		case "stream.lua":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "second\n")
		default:
			body, _ := io.ReadAll(r.Body)
			d := dump{r.Method, r.RequestURI, r.Host, r.RemoteAddr, r.Header, env, string(body)}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(d)
		}
	})
	go fcgi.Serve(ln, h)
	return dial
}

// rawResponder is a minimal FastCGI responder that answers each script
// with a fixed STDOUT and STDERR, so that tests can send any CGI response.
// It honours FCGI_KEEP_CONN unless closeAfter is set, and counts the
// connections it accepted.
type rawResponder struct {
	answers    map[string][2]string // SCRIPT_NAME → stdout, stderr
	closeAfter bool
	conns      atomic.Int64
	mu         sync.Mutex
	seen       []map[string]string // params of each request
}

func (rr *rawResponder) start(t testing.TB) func() (net.Conn, error) {
	ln, dial := unixListener(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rr.conns.Add(1)
			go rr.serve(c)
		}
	}()
	return dial
}

func (rr *rawResponder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		keep, params, err := readRequest(br)
		if err != nil {
			return
		}
		rr.mu.Lock()
		rr.seen = append(rr.seen, params)
		rr.mu.Unlock()
		a, ok := rr.answers[params["SCRIPT_NAME"]]
		if !ok {
			a[0] = "Status: 404\r\nContent-Type: text/plain\r\n\r\nno answer for " + params["SCRIPT_NAME"]
		}
		if _, err := c.Write(protocol.AppendResponse(nil, 1, []byte(a[0]), []byte(a[1]), 0)); err != nil {
			return
		}
		if !keep || rr.closeAfter {
			return
		}
	}
}

// readRequest reads one request: BEGIN_REQUEST, PARAMS, STDIN to its end.
// The request body is returned as the parameter "STDIN".
func readRequest(br *bufio.Reader) (keep bool, params map[string]string, err error) {
	params = map[string]string{}
	var raw, stdin []byte
	for {
		hb := make([]byte, protocol.HeaderLen)
		if _, err := io.ReadFull(br, hb); err != nil {
			return false, nil, err
		}
		h := protocol.ParseHeader(hb)
		content := make([]byte, int(h.ContentLength)+int(h.PaddingLength))
		if _, err := io.ReadFull(br, content); err != nil {
			return false, nil, err
		}
		content = content[:h.ContentLength]
		switch h.Type {
		case protocol.TypeBeginRequest:
			keep = content[2]&protocol.FlagKeepConn != 0
		case protocol.TypeParams:
			if len(content) > 0 {
				raw = append(raw, content...)
				continue
			}
			p := protocol.Params(raw)
			for off := 0; off < len(p); {
				name, value, next, err := p.Next(off)
				if err != nil {
					return false, nil, err
				}
				params[string(name)] = string(value)
				off = next
			}
		case protocol.TypeStdin:
			if len(content) == 0 {
				params["STDIN"] = string(stdin)
				return keep, params, nil
			}
			stdin = append(stdin, content...)
		default:
			return false, nil, errors.New("unexpected record type")
		}
	}
}

func (rr *rawResponder) last() map[string]string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.seen[len(rr.seen)-1]
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
