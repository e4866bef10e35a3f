package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pipeClient serves one end of a net.Pipe with serveConn and returns a
// Client on the other end and the server's result.
func pipeClient(t *testing.T, lim Limits, h handler) (*Client, chan error) {
	t.Helper()
	cs, ss := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveConn(ss, lim, h) }()
	c := NewClient(cs)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, done
}

func wantEcho(t *testing.T, resp *Response, pairs []Pair, body string) {
	t.Helper()
	status, _, got, err := ParseCGI(resp.Stdout)
	if err != nil || status != 200 {
		t.Fatalf("ParseCGI: %d %v", status, err)
	}
	for _, p := range pairs {
		if !bytes.Contains(got, []byte(p.Name+"="+p.Value+"\n")) {
			t.Fatalf("param %s missing from %q", p.Name, shorten(got))
		}
	}
	if !bytes.HasSuffix(got, []byte(fmt.Sprintf("body=%d:%s", len(body), body))) {
		t.Fatalf("body missing from %q", shorten(got))
	}
}

func TestRoundTrip(t *testing.T) {
	pairs := []Pair{
		{"SCRIPT_FILENAME", "/srv/a.lua"},
		{"EMPTY", ""},
		{strings.Repeat("L", 200), strings.Repeat("v", 1000)},
		{"STDERR", "to the log"},
	}
	bodies := []string{"", "x=1", strings.Repeat("b", 200000)}
	run := func(t *testing.T, c *Client, keep bool) {
		for _, body := range bodies {
			req := &Request{ID: 3, KeepConn: keep, Params: pairs}
			if body != "" {
				req.Body = strings.NewReader(body)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProtocolStatus != StatusRequestComplete || resp.AppStatus != 0 {
				t.Fatalf("status %d/%d", resp.AppStatus, resp.ProtocolStatus)
			}
			if string(resp.Stderr) != "to the log" {
				t.Fatalf("stderr %q", resp.Stderr)
			}
			wantEcho(t, resp, pairs[:3], body)
			if !keep {
				return
			}
		}
	}
	t.Run("pipe", func(t *testing.T) {
		c, done := pipeClient(t, Limits{}, echo)
		run(t, c, true)
		c.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unix", func(t *testing.T) {
		s := startServer(t, Limits{}, echo)
		run(t, s.dial(t), true)
		for range 3 {
			run(t, s.dial(t), false)
		}
		if errs := s.errors(); len(errs) > 0 {
			t.Fatal(errs)
		}
	})
}

func TestKeepConnManyRequests(t *testing.T) {
	s := startServer(t, Limits{}, echo)
	c := s.dial(t)
	for i := range 2000 {
		pairs := []Pair{{"N", fmt.Sprint(i)}}
		resp, err := c.Do(&Request{ID: uint16(i%3 + 1), KeepConn: true, Params: pairs})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		wantEcho(t, resp, pairs, "")
	}
}

func TestGetValues(t *testing.T) {
	s := startServer(t, Limits{MaxConns: 8, MaxReqs: 8}, echo)
	c := s.dial(t)
	vals, err := c.GetValues(ValueMaxConns, ValueMaxReqs, ValueMpxsConns, "FCGI_OTHER")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ValueMaxConns: "8", ValueMaxReqs: "8", ValueMpxsConns: "0"}
	if fmt.Sprint(vals) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", vals, want)
	}
	vals, err = c.GetValues(ValueMpxsConns)
	if err != nil || len(vals) != 1 || vals[ValueMpxsConns] != "0" {
		t.Fatalf("got %v, %v", vals, err)
	}
	// The connection still serves requests.
	resp, err := c.Do(&Request{KeepConn: true})
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, resp, nil, "")
}

// rawConn is a raw socket to a test server for records a Client never sends.
func rawConn(t *testing.T, s *server) (net.Conn, *Client) {
	c := s.dial(t)
	return c.conn, c
}

func TestUnknownType(t *testing.T) {
	s := startServer(t, Limits{}, echo)
	nc, c := rawConn(t, s)
	if _, err := nc.Write(AppendRecord(nil, 200, 0, []byte("what"))); err != nil {
		t.Fatal(err)
	}
	h, err := readHeader(c.br)
	if err != nil || h.Type != TypeUnknownType || h.RequestID != 0 || h.ContentLength != 8 {
		t.Fatalf("got %+v, %v", h, err)
	}
	b, _ := c.br.Peek(8)
	if b[0] != 200 {
		t.Fatalf("answered type %d", b[0])
	}
	c.br.Discard(8)
	// GetValues sees UNKNOWN_TYPE as an error.
	if _, err := nc.Write(AppendRecord(nil, 99, 0, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetValues(ValueMaxConns); err == nil {
		t.Fatal("GetValues accepted UNKNOWN_TYPE")
	}
}

func TestUnknownRole(t *testing.T) {
	s := startServer(t, Limits{}, echo)
	c := s.dial(t)
	for _, role := range []uint16{RoleAuthorizer, RoleFilter, 77} {
		resp, err := c.Do(&Request{Role: role, KeepConn: true, Params: []Pair{{"A", "b"}}, Body: strings.NewReader("body")})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtocolStatus != StatusUnknownRole || len(resp.Stdout) != 0 {
			t.Fatalf("role %d: got %+v", role, resp)
		}
	}
	// Its params and body were skipped: the connection still works.
	resp, err := c.Do(&Request{KeepConn: true})
	if err != nil || resp.ProtocolStatus != StatusRequestComplete {
		t.Fatalf("got %+v, %v", resp, err)
	}
	// Without KEEP_CONN the server closes the connection.
	resp, err = c.Do(&Request{Role: RoleAuthorizer})
	if err != nil || resp.ProtocolStatus != StatusUnknownRole {
		t.Fatalf("got %+v, %v", resp, err)
	}
	if _, err := c.Do(&Request{}); err == nil {
		t.Fatal("connection still open")
	}
}

func TestCantMpxConn(t *testing.T) {
	s := startServer(t, Limits{}, echo)
	nc, c := rawConn(t, s)
	var b []byte
	b = AppendBeginRequest(b, 1, RoleResponder, FlagKeepConn)
	b = AppendParams(b, 1, []Pair{{"A", "1"}})
	b = AppendBeginRequest(b, 2, RoleResponder, FlagKeepConn)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	app, proto, err := ReadResponse(c.br, 2, nil, nil)
	if err != nil || app != 0 || proto != StatusCantMpxConn {
		t.Fatalf("got %d %d %v", app, proto, err)
	}
	// Request 1 goes on.
	if _, err := nc.Write(AppendRecord(nil, TypeStdin, 1, nil)); err != nil {
		t.Fatal(err)
	}
	var out []byte
	_, proto, err = ReadResponse(c.br, 1, func(p []byte) { out = append(out, p...) }, nil)
	if err != nil || proto != StatusRequestComplete || !bytes.Contains(out, []byte("A=1\n")) {
		t.Fatalf("got %d %v %q", proto, err, out)
	}
}

func TestAbort(t *testing.T) {
	s := startServer(t, Limits{}, echo)
	nc, c := rawConn(t, s)
	var b []byte
	b = AppendBeginRequest(b, 1, RoleResponder, FlagKeepConn)
	b = AppendRecord(b, TypeParams, 1, AppendPair(nil, "A", "1"))
	b = AppendRecord(b, TypeAbortRequest, 1, nil)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	var out []byte
	_, proto, err := ReadResponse(c.br, 1, func(p []byte) { out = append(out, p...) }, nil)
	if err != nil || proto != StatusRequestComplete || len(out) != 0 {
		t.Fatalf("got %d %v %q", proto, err, out)
	}
	// The rest of the aborted request is ignored; the next one is served.
	b = AppendRecord(nil, TypeParams, 1, nil)
	b = AppendRecord(b, TypeStdin, 1, nil)
	b = EncodeRequest(b, &Request{KeepConn: true, Params: []Pair{{"B", "2"}}})
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	_, proto, err = ReadResponse(c.br, 1, func(p []byte) { out = append(out, p...) }, nil)
	if err != nil || proto != StatusRequestComplete || !bytes.Contains(out, []byte("B=2\n")) {
		t.Fatalf("got %d %v %q", proto, err, out)
	}
}

// TestHugeParamsRefused: a 4 MiB params block ends the connection with a
// limit error on the server and an error on the client.
func TestHugeParamsRefused(t *testing.T) {
	for _, via := range []string{"pipe", "unix"} {
		t.Run(via, func(t *testing.T) {
			req := &Request{Params: []Pair{{"BIG", strings.Repeat("x", 4<<20)}}}
			var c *Client
			var serverErr func() error
			if via == "pipe" {
				var done chan error
				c, done = pipeClient(t, Limits{}, echo)
				serverErr = func() error { return <-done }
			} else {
				s := startServer(t, Limits{}, echo)
				c = s.dial(t)
				serverErr = func() error { return s.waitErr(t) }
			}
			if _, err := c.Do(req); err == nil {
				t.Fatal("client got a response")
			}
			if err := serverErr(); !errors.Is(err, ErrLimit) {
				t.Fatalf("server error %v", err)
			}
		})
	}
}

// TestEarlyAnswer: an application answering before it has read the body
// (a large one, over an unbuffered pipe) does not deadlock the client.
func TestEarlyAnswer(t *testing.T) {
	cs, ss := net.Pipe()
	c := NewClient(cs)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	defer c.Close()
	go func() {
		defer ss.Close()
		conn := NewConn(Limits{})
		var out []byte
		for {
			n, err := ss.Read(conn.ReadBuffer())
			conn.Advance(n)
			if err != nil {
				return
			}
			for {
				ev, err := conn.Next()
				if err != nil || ev.Kind == EventNone {
					break
				}
				if ev.Kind == EventRequest {
					out = AppendResponse(out[:0], ev.RequestID, bytes.Repeat([]byte("o"), 300000), nil, 0)
					conn.FinishRequest()
					ss.Write(out)
				}
			}
		}
	}()
	for range 3 {
		resp, err := c.Do(&Request{KeepConn: true, Body: bytes.NewReader(make([]byte, 500000))})
		if err != nil || len(resp.Stdout) != 300000 {
			t.Fatalf("got %v", err)
		}
	}
}

// TestTruncatedResponse: a server that dies mid-response gives
// io.ErrUnexpectedEOF.
func TestTruncatedResponse(t *testing.T) {
	full := AppendResponse(nil, 1, []byte("Status: 200\r\n\r\nhello"), nil, 0)
	for _, cut := range []int{0, 5, 8, 20, len(full) - 1} {
		cs, ss := net.Pipe()
		go func() {
			buf := make([]byte, 4096)
			ss.Read(buf)
			ss.Write(full[:cut])
			ss.Close()
		}()
		c := NewClient(cs)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		_, err := c.Do(&Request{})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut %d: %v", cut, err)
		}
		c.Close()
	}
}

// TestSplitWrites sends requests over a unix socket one byte per write, and
// then in writes cut at odd sizes, to a Conn-based server.
func TestSplitWrites(t *testing.T) {
	s := startServer(t, Limits{}, echo)
	nc, c := rawConn(t, s)
	pairs := []Pair{{"SCRIPT_FILENAME", "/a.lua"}, {strings.Repeat("K", 129), "v"}}
	req := EncodeRequest(nil, &Request{KeepConn: true, Params: pairs, Body: strings.NewReader("body")})
	for _, step := range []int{1, 3, 7, 64, 1000} {
		for b := req; len(b) > 0; {
			n := min(step, len(b))
			if _, err := nc.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		var out []byte
		_, proto, err := ReadResponse(c.br, 1, func(p []byte) { out = append(out, p...) }, nil)
		if err != nil || proto != StatusRequestComplete {
			t.Fatalf("step %d: %d %v", step, proto, err)
		}
		wantEcho(t, &Response{Stdout: out}, pairs, "body")
	}
}
