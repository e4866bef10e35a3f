package pollconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPollConn: a pollConn over TCP and unix sockets reads and writes,
// stops at the binding's deadline when the peer says nothing, and sees
// the peer's close as EOF.
func TestPollConn(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "s")
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			peer := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					peer <- c
				}
				close(peer)
			}()
			var dl Deadline
			dl.Set(time.Now().Add(10 * time.Second))
			c, err := Dialer(&dl)(context.Background(), network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p := <-peer
			if p == nil {
				t.Fatal("no connection accepted")
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(p, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("peer read %q %v", buf, err)
			}
			p.Write([]byte("pong"))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
				t.Fatalf("read %q %v", buf, err)
			}

			// The peer stays silent: the read ends at the deadline.
			dl.Set(time.Now().Add(50 * time.Millisecond))
			t0 := time.Now()
			_, err = c.Read(buf)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("silent peer: %v, want a timeout", err)
			}
			if took := time.Since(t0); took < 50*time.Millisecond || took > 5*time.Second {
				t.Errorf("the read ended after %v, want the 50 ms deadline", took)
			}

			dl.Set(time.Now().Add(10 * time.Second))
			p.Close()
			if _, err := c.Read(buf); err != io.EOF {
				t.Fatalf("closed peer: %v, want EOF", err)
			}
		})
	}
}

// TestPollConnDialRefused: nothing listens: the dial fails at once.
func TestPollConnDialRefused(t *testing.T) {
	var dl Deadline
	dl.Set(time.Now().Add(10 * time.Second))
	_, err := Dialer(&dl)(context.Background(), "unix", filepath.Join(t.TempDir(), "none"))
	if err == nil {
		t.Fatal("dial to a missing socket succeeded")
	}
}

// TestCheckedDialer: over TCP, the first write after the peer closed
// fails with nothing sent; while the peer is there, writes pass, also
// when it has sent something not read yet. A plain Dialer's write passes
// (the kernel takes it), which is why pgx needs the check.
func TestCheckedDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dl Deadline
	dl.Set(time.Now().Add(10 * time.Second))
	for _, checked := range []bool{true, false} {
		dial := Dialer(&dl)
		if checked {
			dial = CheckedDialer(&dl)
		}
		c, err := dial(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		p, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		p.Write([]byte("notice")) // unread: the peer is still there
		if _, err := c.Write([]byte("q1")); err != nil {
			t.Fatalf("checked %v: write to a live peer: %v", checked, err)
		}
		buf := make([]byte, 6)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p, buf[:2]); err != nil { // else the close is a reset
			t.Fatal(err)
		}
		p.Close()
		// wait for the peer's FIN to arrive
		pfd := c.(*pollConn)
		if err := pfd.wait(unix.POLLRDHUP, time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Write([]byte("q2"))
		if checked && (n != 0 || err == nil) {
			t.Errorf("write after the peer closed: %d, %v; want 0 and an error", n, err)
		}
		if !checked && err != nil {
			t.Errorf("unchecked write after the peer closed: %v (the kernel takes it)", err)
		}
		c.Close()
	}
}
