package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runMagnetd runs bin/magnetd to completion and returns its exit code and
// output.
func runMagnetd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(magnetdBin, args...)
	done := make(chan struct{})
	var out []byte
	go func() { out, _ = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("magnetd %q did not exit", args)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	tests := []struct {
		args []string
		want string // in the one-line error
	}{
		{[]string{"-s", sock, "-p", "9000"}, "-s/--socket"},
		{[]string{"-s", sock, "-F", "0"}, "-F/--children"},
		{[]string{"-s", sock, "-b", "0"}, "-b/--backlog"},
		{[]string{"-s", sock, "-M", "8x"}, "-M/--socket-mode"},
		{[]string{"-p", "70000"}, "-p/--port"},
		{[]string{"-p", "http"}, "-p"},
		{[]string{"-a", "127.0.0.1"}, "-a/--addr"},
		{[]string{"-a", "not-an-ip", "-p", "9000"}, "not a valid IP address"},
		{[]string{"-s", sock, "--drain-timeout", "0s"}, "--drain-timeout"},
		{[]string{"-s", sock, "--log-level", "loud"}, "--log-level"},
		{[]string{"-s", sock, "--max-requests", "-1"}, "--max-requests"},
		{[]string{"--http", "127.0.0.1:0"}, "--http needs --docroot"},
		{[]string{"-s", sock, "--access-log", filepath.Join(dir, "a.log")}, "--access-log needs --http"},
		{[]string{"-s", sock, "--bogus"}, "bogus"},
		{[]string{"-s", sock, "--", "/nonexistent/program"}, "worker program"},
		{[]string{"-F", "2"}, "no socket given"},
		{[]string{"-s", sock, "-u", "root", "--", "/bin/true"}, "uid or gid 0"},
		{[]string{"-s", sock, "-u", "0", "--", "/bin/true"}, "uid or gid 0"},
		{[]string{"-s", sock, "-u", "nobody", "-g", "root", "--", "/bin/true"}, "uid or gid 0"},
		{[]string{"-s", sock, "-u", "no-such-user-here", "--", "/bin/true"}, "can't find user name"},
		{[]string{"-s", strings.Repeat("x", 120), "--", "/bin/true"}, "too long"},
	}
	for _, tt := range tests {
		if os.Getuid() != 0 && strings.Contains(tt.want, "uid or gid 0") {
			continue
		}
		code, out := runMagnetd(t, append([]string{"-n"}, tt.args...)...)
		if code != 255 {
			t.Errorf("magnetd %q: exit %d, want 255; output %q", tt.args, code, out)
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("magnetd %q: output %q lacks %q", tt.args, out, tt.want)
		}
		if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
			t.Errorf("magnetd %q: want a one-line error, got %q", tt.args, out)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Fatalf("magnetd %q left %s behind", tt.args, sock)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-?"}} {
		code, out := runMagnetd(t, args...)
		if code != 0 || !strings.Contains(out, "spawn-fcgi") || !strings.Contains(out, "--children") {
			t.Errorf("magnetd %q: exit %d, output %q", args, code, out)
		}
	}
	code, out := runMagnetd(t, "-v")
	if code != 0 || !strings.HasPrefix(out, "magnetd v") {
		t.Errorf("magnetd -v: exit %d, output %q", code, out)
	}
	// Like spawn-fcgi: no argument at all shows the help and fails.
	code, out = runMagnetd(t)
	if code != 255 || !strings.Contains(out, "USAGE") {
		t.Errorf("magnetd: exit %d, output %q", code, out)
	}
}

func TestSocketInUse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "busy.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, _ := os.Stat(sock)
	pid := filepath.Join(t.TempDir(), "m.pid")
	os.WriteFile(pid, []byte("12345\n"), 0o644)
	code, out := runMagnetd(t, "-n", "-s", sock, "-P", pid, "--", helperBin)
	if code != 255 || !strings.Contains(out, "already in use") {
		t.Fatalf("exit %d, output %q; want 255 and 'already in use'", code, out)
	}
	fi2, err := os.Stat(sock)
	if err != nil || !os.SameFile(fi, fi2) {
		t.Errorf("the socket file was touched: %v", err)
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Errorf("the listener no longer answers: %v", err)
	} else {
		c.Close()
	}
	if b, _ := os.ReadFile(pid); string(b) != "12345\n" {
		t.Errorf("the pid file of the running instance changed to %q", b)
	}

	// A file that is not a socket is refused and left alone.
	plain := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(plain, []byte("data"), 0o644)
	code, out = runMagnetd(t, "-n", "-s", plain, "--", helperBin)
	if b, _ := os.ReadFile(plain); code != 255 || string(b) != "data" {
		t.Errorf("exit %d, output %q, file %q; want 255 and the file untouched", code, out, b)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal("stale socket file missing:", err)
	}
	m := startMaster(t, nil, nil, "-n", "-s", sock, "--", helperBin)
	m.waitLog("fcgihelper: serving", 30*time.Second)
	if body, err := request("unix", sock, "", ""); err != nil || !strings.Contains(body, "pid=") {
		t.Fatalf("request: %q, %v", body, err)
	}
	m.signal(sigterm)
	if code := m.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestUnwritablePIDFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	for _, pid := range []string{filepath.Join(dir, "missing", "m.pid"), dir} {
		code, out := runMagnetd(t, "-n", "-s", sock, "-P", pid, "--", helperBin)
		if code != 255 || !strings.Contains(out, "-P/--pid-file") {
			t.Errorf("-P %s: exit %d, output %q; want 255 naming -P", pid, code, out)
		}
		if strings.Contains(out, "worker started") || strings.Contains(out, "fcgihelper") {
			t.Errorf("-P %s: a worker started: %q", pid, out)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("-P %s: the socket was bound", pid)
		}
	}
}
