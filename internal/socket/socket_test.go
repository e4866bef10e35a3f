package socket

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	s, err := Listen(ListenConfig{Path: path, Mode: 0o600, Backlog: 16})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket file %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}
	if !IsListener(int(s.File.Fd())) {
		t.Errorf("IsListener = false on a listening socket")
	}
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// In use: refused, the file left alone.
	if _, err := Listen(ListenConfig{Path: path, Mode: 0o600}); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("second Listen: %v, want ErrSocketInUse", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("socket removed by the refused Listen: %v", err)
	}

	// Close removes the file; a stale file is replaced.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}
	l, _ := net.Listen("unix", path)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	s, err = Listen(ListenConfig{Path: path, Mode: 0o660})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s.Close()

	// Not a socket: refused and untouched.
	os.WriteFile(path, []byte("x"), 0o644)
	if _, err := Listen(ListenConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Errorf("file changed to %q", b)
	}
	if _, err := Listen(ListenConfig{Path: "/" + strings.Repeat("x", 120)}); err == nil {
		t.Errorf("Listen with a too long path succeeded")
	}
}

func TestListenTCP(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1", "[::1]"} {
		l, err := net.Listen("tcp", net.JoinHostPort(strings.Trim(addr, "[]"), "0"))
		if err != nil {
			t.Logf("%s unavailable: %v", addr, err)
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s, err := Listen(ListenConfig{Addr: addr, Port: port})
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		c, err := s.Dial()
		if err != nil {
			t.Fatalf("%s: dial: %v", addr, err)
		}
		c.Close()
		// A port in use is refused even with SO_REUSEADDR.
		if _, err := Listen(ListenConfig{Addr: addr, Port: port}); err == nil {
			t.Errorf("%s: second Listen on port %d succeeded", addr, port)
		}
		fs, err := FileSocket(int(s.File.Fd()), "")
		if err != nil || fs.Network != "tcp" || fs.Addr != s.Addr {
			t.Errorf("FileSocket = %+v, %v; want tcp %s", fs, err, s.Addr)
		}
		s.Close()
	}
	if _, err := Listen(ListenConfig{Addr: "localhost", Port: 9000}); err == nil || !strings.Contains(err.Error(), "not a valid IP address") {
		t.Errorf("Listen on a host name: %v", err)
	}
}

func TestIsListener(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if IsListener(int(r.Fd())) {
		t.Errorf("a pipe is not a listener")
	}
	if _, err := FileSocket(int(r.Fd()), ""); err == nil {
		t.Errorf("FileSocket accepted a pipe")
	}
}

func TestCloseKeepsAnotherInstancesSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	s, err := Listen(ListenConfig{Path: path, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(); err != nil {
		t.Fatal(err)
	}
	// Another instance binds the free path while this one drains.
	s2, err := Listen(ListenConfig{Path: path, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Close removed the other instance's socket: %v", err)
	}
}
