package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/daemon"
)

// testOptions are the options of "magnetd -n" given nothing else.
func testOptions() *options {
	return &options{workers: 1, backlog: 1024, phpChildren: -1, noFork: true, mode: 0o600}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// onFD0 puts f on fd 0 for the rest of the test, as a web server or a
// spawner starts magnetd, and puts the old fd 0 back at the end.
func onFD0(t *testing.T, f *os.File) {
	t.Helper()
	saved, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Dup3(int(f.Fd()), 0, 0); err != nil {
		syscall.Close(saved)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Dup3(saved, 0, 0)
		syscall.Close(saved)
	})
}

// noListenerOnFD0 makes sure fd 0 is not a listening socket.
func noListenerOnFD0(t *testing.T) {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	onFD0(t, f)
}

// boundOptions are the options of "magnetd -n -s dir/s.sock -P dir/m.pid".
func boundOptions(t *testing.T) *options {
	dir := t.TempDir()
	o := testOptions()
	o.socketPath, o.pidFile = filepath.Join(dir, "s.sock"), filepath.Join(dir, "m.pid")
	return o
}

func TestListenerBoundRemovedOnError(t *testing.T) {
	o := boundOptions(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if l.inherited || l.tempDir != "" || l.sock.Network != "unix" || l.sock.Addr != o.socketPath {
		t.Errorf("listener %+v, socket %s %s", l, l.sock.Network, l.sock.Addr)
	}
	if !exists(o.pidFile) {
		t.Errorf("pid file not opened before the pool runs")
	}
	if err := l.pid.write(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	l.close(errors.New("the pool failed"), discardLog())
	if exists(o.socketPath) || exists(o.pidFile) {
		t.Errorf("socket left: %v, pid file left: %v", exists(o.socketPath), exists(o.pidFile))
	}
}

func TestListenerBoundAbandoned(t *testing.T) {
	o := boundOptions(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	l.abandon()
	if exists(o.socketPath) || exists(o.pidFile) {
		t.Errorf("socket left: %v, created pid file left: %v", exists(o.socketPath), exists(o.pidFile))
	}

	// A running instance's pid file is left as it was.
	os.WriteFile(o.pidFile, []byte("12345\n"), 0o644)
	if l, err = openListener(o, daemon.Identity{}, false); err != nil {
		t.Fatal(err)
	}
	l.abandon()
	if b, _ := os.ReadFile(o.pidFile); string(b) != "12345\n" {
		t.Errorf("pid file now %q", b)
	}
}

func TestListenerBindFails(t *testing.T) {
	o := boundOptions(t)
	os.WriteFile(o.socketPath, []byte("data"), 0o644) // not a socket
	if _, err := openListener(o, daemon.Identity{}, false); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("openListener: %v", err)
	}
	if b, _ := os.ReadFile(o.socketPath); string(b) != "data" {
		t.Errorf("the file at -s changed to %q", b)
	}
	if exists(o.pidFile) {
		t.Errorf("the pid file it created was left")
	}
}

func TestListenerPIDFileBeforeSocket(t *testing.T) {
	o := boundOptions(t)
	o.pidFile = filepath.Join(o.pidFile, "missing", "m.pid")
	if _, err := openListener(o, daemon.Identity{}, false); err == nil || !strings.HasPrefix(err.Error(), "-P/--pid-file: ") {
		t.Errorf("openListener: %v", err)
	}
	if exists(o.socketPath) {
		t.Errorf("the socket was bound")
	}
}

func TestListenerTCP(t *testing.T) {
	noListenerOnFD0(t)
	o := testOptions()
	o.addr, o.port = "127.0.0.1", freeTCPPort(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if l.sock.Network != "tcp" || l.pid != nil || l.tempDir != "" {
		t.Errorf("listener %+v, socket %s", l, l.sock.Network)
	}
	c, err := l.sock.Dial()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.close(nil, discardLog())
}

// freeTCPPort returns a loopback port nothing listens on.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestListenerInheritedNeverUnlinked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lighttpd-0.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	onFD0(t, f)

	o := testOptions()
	o.pidFile = filepath.Join(dir, "m.pid")
	for _, stopErr := range []error{nil, errors.New("the pool failed")} {
		l, err := openListener(o, daemon.Identity{}, false)
		if err != nil {
			t.Fatal(err)
		}
		if !l.inherited || l.sock.Addr != path || l.sock.Owned() != "" {
			t.Errorf("listener %+v, socket %s owned %q", l, l.sock.Addr, l.sock.Owned())
		}
		if err := l.pid.write(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		l.close(stopErr, discardLog())
		if !exists(path) {
			t.Fatalf("close(%v) removed the inherited socket's file", stopErr)
		}
		if exists(o.pidFile) {
			t.Errorf("close(%v) left the pid file", stopErr)
		}
		if err := syscall.Dup3(int(f.Fd()), 0, 0); err != nil { // close closed fd 0
			t.Fatal(err)
		}
	}
}

func TestWorkerCount(t *testing.T) {
	t.Setenv("PHP_FCGI_CHILDREN", "3")
	o := testOptions()
	o.workers = 5
	if n := workerCount(o, false); n != 5 {
		t.Errorf("bound: %d workers, want -F's 5", n)
	}
	if n := workerCount(o, true); n != 3 {
		t.Errorf("inherited: %d workers, want PHP_FCGI_CHILDREN's 3", n)
	}
	o.workersSet = true
	if n := workerCount(o, true); n != 5 {
		t.Errorf("inherited with -F: %d workers, want 5", n)
	}
	o.workersSet = false
	t.Setenv("PHP_FCGI_CHILDREN", "x")
	if n := workerCount(o, true); n != 1 {
		t.Errorf("inherited, bad PHP_FCGI_CHILDREN: %d workers, want 1", n)
	}
}

// httpOptions are the options of "magnetd -n --http ... --docroot ...".
func httpOptions(t *testing.T) *options {
	noListenerOnFD0(t)
	o := testOptions()
	o.httpAddr, o.docroot = "127.0.0.1:0", t.TempDir()
	return o
}

func TestListenerHTTPTempDir(t *testing.T) {
	o := httpOptions(t)
	for _, undo := range []string{"close", "abandon"} {
		l, err := openListener(o, daemon.Identity{}, false)
		if err != nil {
			t.Fatal(err)
		}
		if l.tempDir == "" || l.sock.Addr != filepath.Join(l.tempDir, "fcgi.sock") {
			t.Fatalf("temp dir %q, socket %s", l.tempDir, l.sock.Addr)
		}
		if fi, err := os.Stat(l.sock.Addr); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("private socket: %v, %v", fi, err)
		}
		if undo == "close" {
			l.close(nil, discardLog())
		} else {
			l.abandon()
		}
		if exists(l.tempDir) {
			t.Errorf("%s left the temp dir %s", undo, l.tempDir)
		}
	}
}

func TestListenerHTTPBindFails(t *testing.T) {
	o := httpOptions(t)
	// A unix socket path this long cannot be bound.
	tmp := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	if _, err := openListener(o, daemon.Identity{}, false); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("openListener: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
	o.pidFile = filepath.Join(t.TempDir(), "m.pid")
	t.Setenv("TMPDIR", filepath.Join(tmp, "missing"))
	if _, err := openListener(o, daemon.Identity{}, false); err == nil || !strings.HasPrefix(err.Error(), "--http: ") {
		t.Errorf("openListener: %v", err)
	}
	if exists(o.pidFile) {
		t.Errorf("the pid file it created was left")
	}
}

func TestListenerNoSocket(t *testing.T) {
	noListenerOnFD0(t)
	_, err := openListener(testOptions(), daemon.Identity{}, false)
	if err == nil || err.Error() != "no socket given (use either -p or -s, or start with a listening socket on fd 0)" {
		t.Errorf("openListener: %v", err)
	}
}

func TestListenerChildReportsAfterCleanUp(t *testing.T) {
	o := boundOptions(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	l.pid.write(os.Getpid())
	// As in a daemon child: the parent exits as soon as it hears, so the
	// files must be gone by then.
	var reports []error
	l.notify = func(err error) {
		if err != nil && (exists(o.socketPath) || exists(o.pidFile)) {
			t.Errorf("reported %v before clean-up", err)
		}
		reports = append(reports, err)
	}
	l.ready()()
	l.close(errors.New("busy"), discardLog())
	if len(reports) != 2 || reports[0] != nil || reports[1] == nil || reports[1].Error() != "busy" {
		t.Errorf("reports %v; want ready, then the error", reports)
	}

	// Without an error, close reports nothing (ready did).
	l = &listener{sock: l.sock, notify: func(err error) { t.Errorf("reported %v", err) }}
	l.close(nil, discardLog())
	if (&listener{}).ready() != nil {
		t.Error("ready outside a daemon child")
	}
}
