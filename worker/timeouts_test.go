package worker

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// waitEOF waits until the worker closes c, and returns how long that took
// from start.
func waitEOF(t *testing.T, c *rawConn, start time.Time) time.Duration {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
		t.Fatalf("waiting for the worker to close the connection (%d bytes read): %v", n, err)
	}
	return time.Since(start)
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// TestIdleTimeout: an idle keep-alive connection is closed after
// IdleTimeout, a connection sending requests meanwhile is not.
func TestIdleTimeout(t *testing.T) {
	dir := t.TempDir()
	s := edgeScripts(t, dir)
	const idle = 200 * time.Millisecond
	sock, srv := startServer(t, Config{IdleTimeout: idle})

	quiet := dialRaw(t, sock)
	quiet.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
	quiet.readEnd(t, 1)
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() { closed <- waitEOF(t, quiet, start) }()

	busy := dialRaw(t, sock)
	for id := uint16(1); ; id++ {
		busy.send(t, head(id, true, s["ok.lua"]), stdinEnd(id))
		if _, body := busy.readEnd(t, id).status(t); body != "ok" {
			t.Fatalf("active connection, request %d: %q", id, body)
		}
		select {
		case d := <-closed:
			if d < idle {
				t.Fatalf("idle connection closed after %v, before the idle timeout", d)
			}
			// the active connection is still served
			busy.send(t, head(id+1, true, s["ok.lua"]), stdinEnd(id+1))
			if _, body := busy.readEnd(t, id+1).status(t); body != "ok" {
				t.Fatalf("active connection after the idle one closed: %q", body)
			}
			if n := srv.Counters().IdleClosed; n != 1 {
				t.Fatalf("%d idle closes counted, want 1", n)
			}
			return
		default:
		}
		time.Sleep(idle / 10) // an active client's pace, well inside the timeout
	}
}

// TestReadTimeout: a request that stops arriving, whether it trickles in
// a byte at a time (slowloris) or stops after BEGIN_REQUEST, is dropped
// after ReadTimeout while other clients are served.
func TestReadTimeout(t *testing.T) {
	dir := t.TempDir()
	s := edgeScripts(t, dir)
	const read = 300 * time.Millisecond
	sock, srv := startServer(t, Config{ReadTimeout: read})
	other := dialRaw(t, sock)

	t.Run("begin only", func(t *testing.T) {
		c := dialRaw(t, sock)
		start := time.Now()
		c.send(t, begin(1, true, protocol.RoleResponder))
		other.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
		other.readEnd(t, 1)
		if d := waitEOF(t, c, start); d < read {
			t.Fatalf("closed after %v, before the read timeout", d)
		}
	})

	t.Run("slowloris", func(t *testing.T) {
		c := dialRaw(t, sock)
		req := cat(head(1, true, s["ok.lua"], protocol.Pair{Name: "X", Value: strings.Repeat("x", 200)}), stdinEnd(1))
		start := time.Now()
		done := make(chan struct{})
		defer close(done)
		go func() {
			for i := range req {
				if _, err := c.Write(req[i : i+1]); err != nil {
					return
				}
				select {
				case <-done:
					return
				case <-time.After(read / 10): // the attack's pace: a byte per interval
				}
			}
		}()
		other.send(t, head(2, true, s["ok.lua"]), stdinEnd(2))
		other.readEnd(t, 2)
		if d := waitEOF(t, c, start); d < read {
			t.Fatalf("closed after %v, before the read timeout", d)
		}
	})

	other.send(t, head(3, true, s["ok.lua"]), stdinEnd(3))
	if _, body := other.readEnd(t, 3).status(t); body != "ok" {
		t.Fatalf("other client: %q", body)
	}
	if n := srv.Counters().ReadTimeouts; n != 2 {
		t.Fatalf("%d read timeouts counted, want 2", n)
	}
}

// TestSendTimeout: a client that never reads its 10 MiB response is
// dropped after SendTimeout, and the client behind it is served.
func TestSendTimeout(t *testing.T) {
	dir := t.TempDir()
	s := edgeScripts(t, dir)
	const send = 300 * time.Millisecond
	sock, srv := startServer(t, Config{SendTimeout: send})

	stalled := dialRaw(t, sock)
	start := time.Now()
	stalled.send(t, head(1, true, s["big.lua"], protocol.Pair{Name: "QUERY_STRING", Value: "655360"}), stdinEnd(1))
	other := dialRaw(t, sock)
	other.send(t, head(1, true, s["ok.lua"]), stdinEnd(1))
	if _, body := other.readEnd(t, 1).status(t); body != "ok" {
		t.Fatalf("behind a stalled client: %q", body)
	}
	if d := time.Since(start); d < send {
		t.Fatalf("served after %v: the stalled client was dropped before the send timeout", d)
	}
	n, _ := io.Copy(io.Discard, stalled)
	if n >= 10<<20 {
		t.Fatalf("stalled client got the whole response (%d bytes)", n)
	}
	if n := srv.Counters().SendTimeouts; n != 1 {
		t.Fatalf("%d send timeouts counted, want 1", n)
	}
}

// TestOverLimitAnswered: too many params, or too large ones, get a 431
// and END_REQUEST, then the connection is closed; never a bare reset.
func TestOverLimitAnswered(t *testing.T) {
	dir := t.TempDir()
	s := edgeScripts(t, dir)
	sock, srv := startServer(t, Config{})
	many := make([]protocol.Pair, 1005)
	for i := range many {
		many[i] = protocol.Pair{Name: "P" + strings.Repeat("x", i%7), Value: "v"}
	}
	cases := []struct {
		name  string
		pairs []protocol.Pair
	}{
		{"1005 params", many},
		{"300 KB param", []protocol.Pair{{Name: "HTTP_COOKIE", Value: strings.Repeat("c", 300<<10)}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, sock)
			req := cat(head(7, true, s["ok.lua"], tc.pairs...), stdin(7, []byte("a body")), stdinEnd(7))
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(req)
				werr <- err
			}()
			r := c.readEnd(t, 7)
			if st, body := r.status(t); st != 431 || !strings.Contains(body, "Too Large") {
				t.Fatalf("status %d %q", st, r.stdout)
			}
			if r.protoStatus != protocol.StatusRequestComplete {
				t.Fatalf("END_REQUEST protocol status %d", r.protoStatus)
			}
			if err := <-werr; err != nil {
				t.Fatalf("sending the request: %v", err)
			}
			c.expectClosed(t)
			if n := srv.Counters().Refused; n != uint64(i+1) {
				t.Fatalf("%d refusals counted, want %d", n, i+1)
			}
		})
	}
	c := dial(t, sock)
	if _, body, _ := get(t, c, s["ok.lua"], true); body != "ok" {
		t.Fatalf("after the refusals: %q", body)
	}
	// a request just under the limits is served
	if _, body, _ := get(t, c, s["ok.lua"], true, protocol.Pair{Name: "HTTP_COOKIE", Value: string(bytes.Repeat([]byte("c"), 200<<10))}); body != "ok" {
		t.Fatalf("200 KB param: %q", body)
	}
}

// TestNoAllocSweep: the loop's clock read and sweep allocate nothing.
func TestNoAllocSweep(t *testing.T) {
	s, c, peer, req := serverPair(t)
	buf := make([]byte, 4096)
	n := testing.AllocsPerRun(200, func() {
		roundTrip(t, s, c, peer, req, buf)
		s.nextSweep = 0 // a sweep is due
		s.tick()
	})
	if n != 0 {
		t.Fatalf("%v allocations per request and sweep, want 0", n)
	}
	if c.closed {
		t.Fatal("an active connection was swept")
	}
}
