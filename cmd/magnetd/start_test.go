package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartFailsBadDocroot: a --docroot that does not exist fails the start
// before magnetd detaches, with the reason, and leaves nothing behind.
func TestStartFailsBadDocroot(t *testing.T) {
	dir := t.TempDir()
	sock, pidFile := filepath.Join(dir, "d.sock"), filepath.Join(dir, "d.pid")
	for _, args := range [][]string{
		{"-s", sock, "-P", pidFile, "--docroot", filepath.Join(dir, "missing")},
		{"-n", "-s", sock, "--docroot", filepath.Join(dir, "missing")},
		{"-t", "-s", sock, "--docroot", filepath.Join(dir, "missing")},
	} {
		code, out := runMagnetd(t, args...)
		if code == 0 || !strings.Contains(out, "--docroot") || !strings.Contains(out, "no such file") ||
			strings.Contains(out, "started successfully") {
			t.Errorf("magnetd %q: exit %d, output %q; want a failure naming --docroot", args, code, out)
		}
	}
	for _, f := range []string{sock, pidFile} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
}

// TestStartFailsWorker: workers that exit at start (magnet-worker given a
// bad --docroot directly) make the start fail within a few seconds, in the
// foreground and as a daemon, with the worker's own error on stderr.
func TestStartFailsWorker(t *testing.T) {
	needWorker(t)
	dir := t.TempDir()
	sock, pidFile := filepath.Join(dir, "w.sock"), filepath.Join(dir, "w.pid")
	missing := filepath.Join(dir, "missing")
	for _, mode := range [][]string{{"-n"}, {"-P", pidFile}} {
		args := append(mode, "-s", sock, "-F", "2", "--", workerBin, "--docroot", missing)
		start := time.Now()
		code, out := runMagnetd(t, args...)
		took := time.Since(start)
		if code == 0 || strings.Contains(out, "started successfully") {
			t.Errorf("magnetd %q: exit %d, output %q; want a failure", args, code, out)
		}
		last := lines(out, "magnetd: ")
		if len(last) == 0 || !strings.Contains(last[len(last)-1], "no worker got ready") ||
			!strings.Contains(last[len(last)-1], missing) {
			t.Errorf("magnetd %q: output %q; want the worker's error on the last magnetd: line", args, out)
		}
		if took < startTimeout {
			t.Errorf("failed after %v, before the start timeout", took)
		}
		for _, f := range []string{sock, pidFile} {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("%q: %s left behind", args, f)
			}
		}
	}
}

// TestConfigTest: -t checks the options and exits 0 without binding or
// starting anything.
func TestConfigTest(t *testing.T) {
	needWorker(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "t.sock")
	code, out := runMagnetd(t, "-t", "-s", sock, "--docroot", dir)
	if code != 0 || !strings.Contains(out, "configuration is ok") {
		t.Errorf("-t: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("-t bound the socket")
	}
	code, out = runMagnetd(t, "-t", "-s", sock, "--", filepath.Join(dir, "no-program"))
	if code == 0 || !strings.Contains(out, "worker program") {
		t.Errorf("-t with a missing program: exit %d, output %q", code, out)
	}
}
