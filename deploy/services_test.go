package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

func runOut(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		return string(out), fmt.Errorf("%s timed out", name)
	}
	return string(out), err
}

// unitValue returns the value of key in the unit file text.
func unitValue(unit, key string) string {
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestSystemdUnit checks the unit with systemd-analyze verify and runs its
// ExecStart, ExecReload and stop the way systemd would for Type=forking.
func TestSystemdUnit(t *testing.T) {
	needWorker(t)
	dir, root := t.TempDir(), docroot(t)
	sock, pidFile, logFile := filepath.Join(dir, "magnet.sock"), filepath.Join(dir, "magnetd.pid"), filepath.Join(dir, "magnetd.log")
	unit := deployFile(t, "magnetd.service",
		"/usr/local/bin/magnetd", magnetdBin,
		"/run/magnet/magnet.sock", sock,
		"/run/magnetd.pid", pidFile,
		"/var/log/magnetd.log", logFile,
		"/var/www/html", root)
	if unitValue(unit, "Type") != "forking" || unitValue(unit, "PIDFile") != pidFile {
		t.Errorf("want Type=forking with PIDFile")
	}
	sa := testutil.LookPath(t, "systemd-analyze", "systemd")
	path := filepath.Join(dir, "magnetd.service")
	writeFile(t, path, unit)
	if out, err := runOut(sa, "verify", "--man=no", path); err != nil || strings.Contains(out, "magnetd.service:") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// ExecStart: magnetd daemonizes and writes its pid file.
	start := strings.Fields(unitValue(unit, "ExecStart"))
	if out, err := runOut(start[0], start[1:]...); err != nil {
		t.Fatalf("ExecStart: %v\n%s", err, out)
	}
	mainPID := readPID(t, pidFile)
	t.Cleanup(func() { syscall.Kill(mainPID, syscall.SIGKILL) })
	if body, err := fcgiGet("unix", sock, filepath.Join(root, "123.lua")); err != nil || body != "123" {
		t.Fatalf("request: %q, %v", body, err)
	}
	// ExecReload with $MAINPID.
	old := testutil.Children(mainPID, "magnet-worker")
	reload := strings.ReplaceAll(unitValue(unit, "ExecReload"), "$MAINPID", strconv.Itoa(mainPID))
	f := strings.Fields(reload)
	if out, err := runOut(f[0], f[1:]...); err != nil {
		t.Fatalf("ExecReload: %v\n%s", err, out)
	}
	if !poll(30*time.Second, func() bool {
		now := testutil.Children(mainPID, "magnet-worker")
		return len(now) == 4 && !slices.ContainsFunc(now, func(p int) bool { return slices.Contains(old, p) })
	}) {
		t.Errorf("no new workers after ExecReload")
	}
	// Stop: KillSignal within TimeoutStopSec.
	syscall.Kill(mainPID, syscall.SIGTERM)
	timeout, _ := time.ParseDuration(unitValue(unit, "TimeoutStopSec") + "s")
	if !poll(timeout, func() bool { return !testutil.Alive(mainPID) }) {
		t.Fatalf("magnetd did not stop within TimeoutStopSec")
	}
	for _, p := range []string{sock, pidFile} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

// TestInitScript runs the SysV/LSB init script as root: start, status,
// reload under load, stop.
func TestInitScript(t *testing.T) {
	needRoot(t)
	needWorker(t)
	dir, root := t.TempDir(), docroot(t)
	sock, pidFile := filepath.Join(dir, "run", "magnet.sock"), filepath.Join(dir, "magnetd.pid")
	defaults := filepath.Join(dir, "default")
	writeFile(t, defaults, fmt.Sprintf("DAEMON=%s\nPIDFILE=%s\nSOCKET=%s\nWORKERS=2\nDAEMON_OPTS=\"--docroot %s --log-file %s\"\nSTOP_TIMEOUT=40\n",
		magnetdBin, pidFile, sock, root, filepath.Join(dir, "magnetd.log")))
	script, _ := filepath.Abs("magnetd.init")
	initd := func(action string) (string, int) {
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
	t.Cleanup(func() { initd("stop") })

	if out, code := initd("status"); code != 3 {
		t.Errorf("status before start: %d %q, want 3", code, out)
	}
	if out, code := initd("start"); code != 0 {
		t.Fatalf("start: %d %q", code, out)
	}
	pid := readPID(t, pidFile)
	if out, code := initd("status"); code != 0 || !strings.Contains(out, strconv.Itoa(pid)) {
		t.Errorf("status: %d %q", code, out)
	}
	if out, code := initd("start"); code != 0 || readPID(t, pidFile) != pid {
		t.Errorf("second start: %d %q", code, out)
	}
	script123 := filepath.Join(root, "123.lua")
	if !poll(30*time.Second, func() bool { b, err := fcgiGet("unix", sock, script123); return err == nil && b == "123" }) {
		t.Fatal("magnetd does not answer after start")
	}

	l := fcgiLoad("unix", sock, script123, "123", 4)
	defer l.Stop()
	l.WaitAnswered(t, 20, 30*time.Second)
	for _, action := range []string{"reload", "force-reload"} {
		old := testutil.Children(pid, "magnet-worker")
		if out, code := initd(action); code != 0 {
			t.Errorf("%s: %d %q", action, code, out)
		}
		if !poll(30*time.Second, func() bool { return newWorkers(pid, old, 2) }) {
			t.Errorf("%s: no new workers: %v (before: %v)", action, testutil.Children(pid, "magnet-worker"), old)
		}
		l.WaitAnswered(t, l.Answered()+20, 30*time.Second) // served by the new workers
	}
	ok, failed, errs := l.Stop()
	t.Logf("load during reload: ok=%d failed=%d %q", ok, failed, errs)
	if failed != 0 || ok == 0 {
		t.Errorf("requests failed during reload: ok=%d failed=%d %q", ok, failed, errs)
	}

	if out, code := initd("restart"); code != 0 {
		t.Errorf("restart: %d %q", code, out)
	}
	if pid2 := readPID(t, pidFile); pid2 == pid || !testutil.Alive(pid2) {
		t.Errorf("restart: pid %d (was %d)", pid2, pid)
	}
	if out, code := initd("stop"); code != 0 {
		t.Errorf("stop: %d %q", code, out)
	}
	if out, code := initd("status"); code != 3 {
		t.Errorf("status after stop: %d %q, want 3", code, out)
	}
	for _, p := range []string{sock, pidFile} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
	if out, code := initd("bogus"); code != 2 {
		t.Errorf("bogus action: %d %q", code, out)
	}
}

// TestLogrotate rotates magnetd's log with the snippet: the postrotate
// SIGUSR1 makes magnetd write to the new file.
func TestLogrotate(t *testing.T) {
	logrotate := testutil.LookPath(t, "logrotate", "logrotate")
	needRoot(t)
	dir := t.TempDir()
	logFile, pidFile, sock := filepath.Join(dir, "magnetd.log"), filepath.Join(dir, "magnetd.pid"), filepath.Join(dir, "m.sock")
	daemon(t, magnetdBin, "-n", "-s", sock, "-P", pidFile, "--log-file", logFile, "--", "/bin/sleep", "1000")
	if !poll(30*time.Second, func() bool { b, _ := os.ReadFile(logFile); return strings.Contains(string(b), "worker started") }) {
		t.Fatal("magnetd does not log")
	}
	conf := filepath.Join(dir, "logrotate.conf")
	writeFile(t, conf, deployFile(t, "magnetd.logrotate",
		"/var/log/magnetd.log", logFile,
		"/run/magnetd.pid", pidFile,
		"create 0640 root adm", "create 0640 root root"))
	if out, err := runOut(logrotate, "-f", "-s", filepath.Join(dir, "state"), conf); err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(logFile + ".1"); err != nil || !strings.Contains(string(b), "worker started") {
		t.Fatalf("rotated log: %v %q", err, b)
	}
	if !poll(30*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "log files reopened")
	}) {
		t.Fatal("magnetd does not write to the new log after rotation")
	}
}
