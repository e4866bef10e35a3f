package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

// handler answers one request of a test server.
type handler func(p Params, body []byte) (stdout, stderr []byte, status uint32)

// echo answers with a CGI response listing the params (sorted) and the body.
func echo(p Params, body []byte) ([]byte, []byte, uint32) {
	var lines []string
	for off := 0; off < len(p); {
		n, v, next, err := p.Next(off)
		if err != nil {
			return nil, []byte(err.Error()), 1
		}
		lines = append(lines, fmt.Sprintf("%s=%s\n", n, v))
		off = next
	}
	sort.Strings(lines)
	var out bytes.Buffer
	out.WriteString("Content-Type: text/plain\r\n\r\n")
	for _, l := range lines {
		out.WriteString(l)
	}
	fmt.Fprintf(&out, "body=%d:", len(body))
	out.Write(body)
	var stderr []byte
	if v, ok := p.Lookup("STDERR"); ok {
		stderr = v
	}
	return out.Bytes(), stderr, 0
}

// finish ends the current request of c with the response out; done means
// the connection is over (a write error, or no FCGI_KEEP_CONN).
func finish(c *Conn, nc net.Conn, out []byte) (done bool, err error) {
	keep := c.KeepConn()
	c.FinishRequest()
	if _, err := nc.Write(out); err != nil {
		return true, err
	}
	return !keep, nil
}

// serveConn serves one connection with a Conn, the way a worker does:
// it reads the whole body, then answers. It returns the Conn's error, a
// read error, or nil when the connection ends cleanly.
func serveConn(nc net.Conn, lim Limits, h handler) error {
	defer nc.Close()
	c := NewConn(lim)
	var body, out []byte
	for {
	events:
		for {
			ev, err := c.Next()
			if err != nil {
				return err
			}
			switch ev.Kind {
			case EventNone:
				break events
			case EventRequest:
				body = body[:0]
			case EventStdin:
				body = append(body, ev.Data...)
			case EventStdinEnd:
				stdout, stderr, status := h(c.Params(), body)
				out = AppendResponse(out[:0], c.RequestID(), stdout, stderr, status)
				if done, err := finish(c, nc, out); done {
					return err
				}
			case EventAbort:
				out = AppendEndRequest(out[:0], ev.RequestID, 0, StatusRequestComplete)
				if done, err := finish(c, nc, out); done {
					return err
				}
			case EventReply:
				if _, err := nc.Write(ev.Data); err != nil {
					return err
				}
				if ev.Close {
					return nil
				}
			}
		}
		n, err := nc.Read(c.ReadBuffer())
		c.Advance(n)
		if err != nil {
			if errors.Is(err, io.EOF) && c.Buffered() == 0 {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("connection ended inside a record: %w", io.ErrUnexpectedEOF)
			}
			return err
		}
	}
}

// server is a test FastCGI server on a real listener.
type server struct {
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// startServer listens on a unix socket in a temporary directory and serves
// each connection with serveConn.
func startServer(t testing.TB, lim Limits, h handler) *server {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcgi")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: l}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := serveConn(nc, lim, h); err != nil {
					s.mu.Lock()
					s.errs = append(s.errs, err)
					s.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		s.wg.Wait()
		os.RemoveAll(dir)
	})
	return s
}

func (s *server) dial(t testing.TB) *Client {
	t.Helper()
	c, err := Dial("unix", s.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// errors returns the errors of the connections served so far.
func (s *server) errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// waitErr polls until a connection has failed and returns its error.
func (s *server) waitErr(t testing.TB) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if errs := s.errors(); len(errs) > 0 {
			return errs[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no connection error")
	return nil
}
