package worker

import (
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// stopServer runs a worker on a loopback TCP listener and returns its
// address and the channel Serve's result arrives on.
func stopServer(t *testing.T, drain time.Duration) (string, *Server, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close() // f holds the socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	srv, err := New(Config{ListenFD: int(f.Fd()), DrainTimeout: drain})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Shutdown()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
		srv.Close()
	})
	return ln.Addr().String(), srv, done
}

// TestStopWaitsForPeer: after Stop, new connections are refused at once,
// a keep-alive connection already open keeps being answered and is never
// closed by the worker; Serve returns once the client closes it.
func TestStopWaitsForPeer(t *testing.T) {
	addr, srv, done := stopServer(t, time.Minute)
	root, _ := filepath.Abs("../examples")
	script := filepath.Join(root, "123.lua")
	c, err := protocol.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if status, body, _ := get(t, c, script, true); status != 200 || body != "123" {
		t.Fatalf("before Stop: %d %q", status, body)
	}
	srv.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			d.Close()
		} else if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections still accepted after Stop (last: %v)", err)
		}
	}
	for i := range 5 {
		if status, body, _ := get(t, c, script, true); status != 200 || body != "123" {
			t.Fatalf("request %d after Stop: %d %q", i, status, body)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) while the web server still holds a connection", err)
	default:
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after the client closed its connection")
	}
}

// TestStopDrainTimeout: a connection the web server never closes ends
// the full stop at DrainTimeout.
func TestStopDrainTimeout(t *testing.T) {
	addr, srv, done := stopServer(t, 300*time.Millisecond)
	c, err := protocol.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, _ := filepath.Abs("../examples")
	if status, _, _ := get(t, c, filepath.Join(root, "123.lua"), true); status != 200 {
		t.Fatalf("status %d", status)
	}
	start := time.Now()
	srv.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return at the drain timeout")
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("stopped after %v, before the drain timeout", took)
	}
}
