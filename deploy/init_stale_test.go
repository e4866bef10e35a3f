package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// initScript runs deploy/magnetd.init with defaults and returns the
// output and exit code of each action.
func initScript(t *testing.T, defaults string) func(action string) (string, int) {
	script, _ := filepath.Abs("magnetd.init")
	return func(action string) (string, int) {
		t.Helper()
		cmd := exec.Command("/bin/sh", script, action)
		cmd.Env = append(os.Environ(), "MAGNETD_DEFAULTS="+defaults)
		out, err := cmd.CombinedOutput()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return string(out), ee.ExitCode()
			}
			t.Fatalf("%s: %v", action, err)
		}
		return string(out), 0
	}
}

// TestInitScriptStalePID: a pid file left behind names a pid now reused by
// an unrelated process (a sleep): status says not running, start starts
// magnetd, stop stops magnetd alone, and the sleep lives on. A start that
// fails (a bad --docroot) exits 1, LSB's generic failure.
func TestInitScriptStalePID(t *testing.T) {
	needRoot(t)
	needWorker(t)
	dir, root := t.TempDir(), docroot(t)
	sock, pidFile := filepath.Join(dir, "run", "magnet.sock"), filepath.Join(dir, "magnetd.pid")
	defaults := filepath.Join(dir, "default")
	writeFile(t, defaults, fmt.Sprintf("DAEMON=%s\nPIDFILE=%s\nSOCKET=%s\nWORKERS=2\nDAEMON_OPTS=\"--docroot %s --log-file %s\"\nSTOP_TIMEOUT=40\n",
		magnetdBin, pidFile, sock, root, filepath.Join(dir, "magnetd.log")))
	initd := initScript(t, defaults)
	t.Cleanup(func() { initd("stop") })

	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	writeFile(t, pidFile, strconv.Itoa(sleep.Process.Pid)+"\n")

	if out, code := initd("status"); code != 1 || !strings.Contains(out, "not running") {
		t.Errorf("status with a stale pid file: %d %q, want 1 (not running, pid file exists)", code, out)
	}
	if out, code := initd("reload"); code != 7 {
		t.Errorf("reload with a stale pid file: %d %q, want 7", code, out)
	}
	if out, code := initd("start"); code != 0 {
		t.Fatalf("start with a stale pid file: %d %q", code, out)
	}
	pid := readPID(t, pidFile)
	if pid == sleep.Process.Pid || !testutil.Alive(pid) {
		t.Fatalf("pid file holds %d after start (the sleep is %d)", pid, sleep.Process.Pid)
	}
	if out, code := initd("status"); code != 0 || !strings.Contains(out, strconv.Itoa(pid)) {
		t.Errorf("status: %d %q", code, out)
	}
	if out, code := initd("stop"); code != 0 {
		t.Errorf("stop: %d %q", code, out)
	}
	if !poll(30*time.Second, func() bool { return !testutil.Alive(pid) }) {
		t.Errorf("magnetd %d still running after stop", pid)
	}

	// A stale pid file at stop: the sleep is not signalled.
	writeFile(t, pidFile, strconv.Itoa(sleep.Process.Pid)+"\n")
	if out, code := initd("stop"); code != 0 {
		t.Errorf("stop with a stale pid file: %d %q", code, out)
	}
	if out, code := initd("status"); code != 3 {
		t.Errorf("status after stop: %d %q, want 3", code, out)
	}
	if !testutil.Alive(sleep.Process.Pid) {
		t.Fatalf("the init script killed the unrelated process %d", sleep.Process.Pid)
	}

	// A start that fails exits 1 and says why.
	writeFile(t, defaults, fmt.Sprintf("DAEMON=%s\nPIDFILE=%s\nSOCKET=%s\nWORKERS=2\nDAEMON_OPTS=\"--docroot %s\"\n",
		magnetdBin, pidFile, sock, filepath.Join(dir, "missing")))
	if out, code := initd("start"); code != 1 || !strings.Contains(out, "--docroot") {
		t.Errorf("start with a bad --docroot: %d %q, want 1 and the reason", code, out)
	}
	if out, code := initd("status"); code != 3 {
		t.Errorf("status after a failed start: %d %q, want 3", code, out)
	}
}
