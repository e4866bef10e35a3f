package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/daemon"
)

// shChild is the argv of a stand-in daemon: sh -c script, which reports on
// fd 4 as a magnetd daemon child does.
func shChild(script string) []string { return []string{"sh", "-c", script} }

func TestHandOffReady(t *testing.T) {
	o := boundOptions(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.handOff("/bin/sh", shChild("echo ok >&4"), nil); err != nil {
		t.Fatal(err)
	}
	// The daemon owns the socket file and the pid file now.
	b, _ := os.ReadFile(o.pidFile)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid == os.Getpid() {
		t.Errorf("pid file %q, want the daemon's pid", b)
	}
	if !exists(o.socketPath) {
		t.Errorf("the daemon's socket was removed")
	}
	if l.sock.File.Fd() != ^uintptr(0) {
		t.Errorf("the first process kept the socket open")
	}
}

func TestHandOffKeepsTempDir(t *testing.T) {
	o := httpOptions(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(l.tempDir) })
	if err := l.handOff("/bin/sh", shChild("echo ok >&4"), nil); err != nil {
		t.Fatal(err)
	}
	if !exists(l.sock.Addr) {
		t.Errorf("the daemon's private socket was removed")
	}
}

func TestHandOffChildFails(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`echo "error: boom" >&4; exit 1`, "boom"},
		{`exit 2`, "daemon exited before it was ready (see the log): exit status 2"},
	} {
		o := boundOptions(t)
		l, err := openListener(o, daemon.Identity{}, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.handOff("/bin/sh", shChild(c.script), nil); err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.script, err, c.want)
		}
		if exists(o.socketPath) || exists(o.pidFile) {
			t.Errorf("%s: socket left: %v, pid file left: %v", c.script, exists(o.socketPath), exists(o.pidFile))
		}

		o = httpOptions(t)
		if l, err = openListener(o, daemon.Identity{}, false); err != nil {
			t.Fatal(err)
		}
		l.handOff("/bin/sh", shChild(c.script), nil)
		if exists(l.tempDir) {
			t.Errorf("%s: the temp dir was left", c.script)
		}
	}
}

func TestHandOffStartFails(t *testing.T) {
	o := boundOptions(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if err := l.handOff(missing, []string{missing}, nil); err == nil || !strings.HasPrefix(err.Error(), "daemonizing: ") {
		t.Errorf("handOff: %v", err)
	}
	if exists(o.socketPath) || exists(o.pidFile) {
		t.Errorf("socket left: %v, pid file left: %v", exists(o.socketPath), exists(o.pidFile))
	}
}

// TestHandOffMagnetdChild hands off to a real magnetd, which fails once it
// has the socket, and reports why to its parent.
func TestHandOffMagnetdChild(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	o := boundOptions(t)
	l, err := openListener(o, daemon.Identity{}, false)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{magnetdBin, "-s", o.socketPath, "-P", o.pidFile, "--status-listen", busy.Addr().String(), "--", helperBin}
	if err := l.handOff(magnetdBin, args, nil); err == nil || !strings.Contains(err.Error(), "--status-listen") {
		t.Errorf("handOff: %v, want the daemon's --status-listen error", err)
	}
	if exists(o.socketPath) || exists(o.pidFile) {
		t.Errorf("socket left: %v, pid file left: %v", exists(o.socketPath), exists(o.pidFile))
	}
}
