package main

import (
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// serve starts a net/http/fcgi responder answering "123" on a unix socket
// and returns the socket's path. With maxConns > 0 it accepts only that
// many connections, like a libfcgi server with as many processes.
func serve(t *testing.T, maxConns int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fcgi.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = l
	if maxConns > 0 {
		ln = &limitListener{Listener: l, left: maxConns, closed: make(chan struct{})}
	}
	t.Cleanup(func() { ln.Close() })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "123")
	})
	go fcgi.Serve(ln, h)
	return path
}

// limitListener accepts left connections, then leaves the others in the
// backlog, as busy libfcgi processes do, until it is closed.
type limitListener struct {
	net.Listener
	mu     sync.Mutex
	left   int
	closed chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.left == 0 {
		l.mu.Unlock()
		<-l.closed
		return nil, net.ErrClosed
	}
	l.left--
	l.mu.Unlock()
	return l.Listener.Accept()
}

func (l *limitListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return l.Listener.Close()
}

func TestRunKeepConn(t *testing.T) {
	for _, raw := range []bool{false, true} {
		addr := serve(t, 0)
		res, err := run(config{network: "unix", addr: addr, conns: 2, keepConn: true, total: 300,
			warmup: 10 * time.Millisecond, script: "/srv/123.lua", expect: "123", raw: raw})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests < 300 || res.Failures != 0 || res.Starved != 0 || res.RPS <= 0 || res.P50 <= 0 || res.Max < res.P99 {
			t.Errorf("raw=%v: unexpected result %+v", raw, res)
		}
	}
}

func TestRunNewConnections(t *testing.T) {
	addr := serve(t, 0)
	res, err := run(config{network: "unix", addr: addr, conns: 4, total: 200,
		script: "/srv/123.lua", expect: "123"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 200 || res.Failures != 0 {
		t.Errorf("unexpected result %+v", res)
	}
}

func TestRunCountsWrongBodies(t *testing.T) {
	addr := serve(t, 0)
	res, err := run(config{network: "unix", addr: addr, conns: 1, keepConn: true,
		duration: 100 * time.Millisecond, script: "/srv/123.lua", expect: "124"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failures == 0 || res.Requests != 0 {
		t.Errorf("wrong bodies not counted: %+v", res)
	}
}

func TestRunReportsStarvedConnections(t *testing.T) {
	// One connection served, two left in the backlog for the whole run.
	addr := serve(t, 1)
	d, warm := 300*time.Millisecond, 100*time.Millisecond
	res, err := run(config{network: "unix", addr: addr, conns: 3, keepConn: true,
		duration: d, warmup: warm, script: "/srv/123.lua", expect: "123"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Starved != 2 || res.Requests == 0 || res.Max < float64((d+warm).Microseconds())*0.9 {
		t.Errorf("starvation not reported: %+v", res)
	}
}

func TestRunTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "123")
	}))
	for _, raw := range []bool{false, true} {
		res, err := run(config{network: "tcp", addr: l.Addr().String(), conns: 2, keepConn: true,
			total: 100, script: "/srv/123.lua", expect: "123", raw: raw})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests < 100 || res.Failures != 0 {
			t.Errorf("raw=%v: unexpected result %+v", raw, res)
		}
	}
}
