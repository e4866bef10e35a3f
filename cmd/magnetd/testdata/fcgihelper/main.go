// Command fcgihelper is a tiny FastCGI responder for magnetd's tests, for
// use where the real magnet-worker is not needed: it serves on the
// listening socket on fd 0 like any libfcgi program. Each response is
// "pid=<pid> children=<$PHP_FCGI_CHILDREN>\n" followed by the content of
// SCRIPT_FILENAME when that file exists; QUERY_STRING "sleep=<duration>"
// delays the answer, and "mark=<path>" creates the file path when the
// request begins, so that a test knows it is in progress. SIGTERM, SIGINT and SIGUSR1 stop it gracefully: it
// stops accepting and exits 0 once the requests in progress are answered.
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	l, err := net.FileListener(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fcgihelper: fd 0:", err)
		os.Exit(1)
	}
	max, _ := strconv.Atoi(os.Getenv("PHP_FCGI_MAX_REQUESTS"))
	var (
		inflight sync.WaitGroup
		served   atomic.Int64
		stop     = make(chan struct{})
		once     sync.Once
	)
	quit := func() { once.Do(func() { close(stop) }) }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		if mark := r.URL.Query().Get("mark"); mark != "" {
			os.WriteFile(mark, nil, 0o644)
		}
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d)
		}
		env := fcgi.ProcessEnv(r)
		fmt.Fprintf(w, "pid=%d children=%s\n", os.Getpid(), os.Getenv("PHP_FCGI_CHILDREN"))
		if b, err := os.ReadFile(env["SCRIPT_FILENAME"]); err == nil {
			w.Write(b)
		}
		if n := served.Add(1); max > 0 && n >= int64(max) {
			quit()
		}
	})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintln(os.Stderr, "fcgihelper: stopping on", sig)
		case <-stop:
		}
		l.Close()
	}()
	fmt.Fprintln(os.Stderr, "fcgihelper: serving")
	tl := &trackingListener{Listener: l, conns: map[*trackedConn]bool{}}
	fcgi.Serve(tl, h)
	quit()
	// Close each kept-alive connection between two requests, never in the
	// middle of one; a connection that has not sent its first request yet
	// is owed an answer and is waited for (up to 2 s).
	deadline := time.Now().Add(2 * time.Second)
	for !tl.closeIdle(time.Now().After(deadline)) {
		time.Sleep(5 * time.Millisecond)
	}
	inflight.Wait()
	os.Exit(0)
}

// trackingListener remembers the accepted connections.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c}
	l.mu.Lock()
	l.conns[tc] = true
	l.mu.Unlock()
	return tc, nil
}

// closeIdle closes the connections that are between requests (and, when
// late, those that never sent one) and reports whether none is left.
func (l *trackingListener) closeIdle(late bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.mu.Lock()
		if !c.busy && (c.started || late) {
			c.Conn.Close()
			delete(l.conns, c)
		}
		c.mu.Unlock()
	}
	return len(l.conns) == 0
}

// trackedConn knows whether a request is under way: from the first bytes
// of a request to the END_REQUEST record of its response.
type trackedConn struct {
	net.Conn
	mu      sync.Mutex
	started bool
	busy    bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.started, c.busy = true, true
		c.mu.Unlock()
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	// net/http/fcgi writes END_REQUEST (type 3) as one record of its own.
	if len(p) >= 8 && p[1] == 3 {
		c.mu.Lock()
		c.busy = false
		c.mu.Unlock()
	}
	return n, err
}
