package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// pool is a running magnetd with its workers, for the supervision tests,
// which run against both the test helper and the real magnet-worker.
type pool struct {
	m       *master
	sock    string
	script  string // SCRIPT_FILENAME to request
	want    string // in every good response body
	workers int
}

type workerKind struct {
	name  string
	start func(t *testing.T, n int, extra ...string) *pool
}

var workerKinds = []workerKind{
	{"helper", startHelperPool},
	{"magnet-worker", startWorkerPool},
}

func startHelperPool(t *testing.T, n int, extra ...string) *pool {
	dir := t.TempDir()
	p := &pool{sock: filepath.Join(dir, "m.sock"), script: filepath.Join(dir, "page.txt"), want: "page-v1", workers: n}
	os.WriteFile(p.script, []byte("page-v1\n"), 0o644)
	args := append([]string{"-n", "-s", p.sock, "-F", fmt.Sprint(n)}, extra...)
	p.m = startMaster(t, nil, nil, append(args, "--", helperBin)...)
	p.waitReady(t)
	return p
}

func startWorkerPool(t *testing.T, n int, extra ...string) *pool {
	needWorker(t)
	dir := t.TempDir()
	p := &pool{sock: filepath.Join(dir, "m.sock"), script: filepath.Join(dir, "page.lua"), want: "page-v1", workers: n}
	writeScript(t, p.script, "page-v1")
	args := append([]string{"-n", "-s", p.sock, "-F", fmt.Sprint(n)}, extra...)
	p.m = startMaster(t, nil, nil, args...)
	p.waitReady(t)
	return p
}

// writeScript writes a Lua script that answers body.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	replaceFile(t, path, fmt.Sprintf("print(\"Content-Type: text/plain\\r\\n\\r\\n%s\")\n", body))
}

// replaceFile replaces path's content atomically, so that a concurrent
// reader never sees it half written.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for all workers and one good answer.
func (p *pool) waitReady(t *testing.T) {
	t.Helper()
	waitChildren(t, p.m.pid(), p.workers, 30*time.Second)
	var (
		body string
		err  error
	)
	if !poll(30*time.Second, func() bool {
		body, err = request("unix", p.sock, p.script, "")
		return err == nil
	}) || !strings.Contains(body, p.want) {
		t.Fatalf("pool does not answer: %q, %v", body, err)
	}
}

func TestKillWorkerUnderLoad(t *testing.T) {
	for _, k := range workerKinds {
		t.Run(k.name, func(t *testing.T) {
			p := k.start(t, 4)
			kids := testutil.Children(p.m.pid(), "")
			l := startLoad(t, "unix", p.sock, p.script, p.want, 8, 0)
			l.WaitAnswered(t, l.Answered()+200, 30*time.Second)
			victim := kids[0]
			syscall.Kill(victim, syscall.SIGKILL)
			killed := time.Now()
			var now []int
			if !poll(10*time.Second, func() bool {
				now = testutil.Children(p.m.pid(), "")
				return len(now) == 4 && !slices.Contains(now, victim)
			}) {
				t.Errorf("no replacement worker: children %v", now)
			}
			took := time.Since(killed)
			l.WaitAnswered(t, l.Answered()+200, 30*time.Second) // on the replacement too
			ok, failed, _ := l.Stop()
			t.Logf("replacement after %v; load %s", took, l)
			if took > time.Second {
				t.Errorf("replacement took %v, want within 1s", took)
			}
			if failed > 1 {
				t.Errorf("%d failed requests, want at most 1: %s", failed, l)
			}
			if ok == 0 {
				t.Errorf("no request succeeded")
			}
			p.m.waitLog("signal: killed", 10*time.Second)
		})
	}
}

func TestReloadUnderLoad(t *testing.T) {
	for _, k := range workerKinds {
		t.Run(k.name, func(t *testing.T) {
			p := k.start(t, 3, "--drain-timeout", "20s")
			old := testutil.Children(p.m.pid(), "")
			l := startLoad(t, "unix", p.sock, p.script, "page-v", 6, 2)
			l.WaitAnswered(t, l.Answered()+200, 30*time.Second)
			// A changed script is served after the reload.
			if k.name == "helper" {
				replaceFile(t, p.script, "page-v2\n")
			} else {
				writeScript(t, p.script, "page-v2")
			}
			p.m.signal(sighup)
			var now []int
			if !poll(30*time.Second, func() bool {
				now = testutil.Children(p.m.pid(), "")
				if len(now) != 3 {
					return false
				}
				for _, pid := range now {
					if slices.Contains(old, pid) {
						return false
					}
				}
				return true
			}) {
				t.Fatalf("after reload children %v, old %v", now, old)
			}
			l.WaitAnswered(t, l.Answered()+200, 30*time.Second) // on the new generation alone
			ok, failed, _ := l.Stop()
			t.Logf("load %s", l)
			if failed != 0 || ok == 0 {
				t.Errorf("want 0 failed requests: %s", l)
			}
			body, err := request("unix", p.sock, p.script, "")
			if err != nil || !strings.Contains(body, "page-v2") {
				t.Errorf("after reload: %q, %v; want page-v2", body, err)
			}
			for _, pid := range old {
				if testutil.Alive(pid) {
					t.Errorf("old worker %d still alive", pid)
				}
			}
		})
	}
}

func TestStopFinishesRequests(t *testing.T) {
	for _, k := range workerKinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "m.pid")
			p := k.start(t, 2, "-P", pidFile, "--drain-timeout", "20s")
			if got := readPID(t, pidFile); got != p.m.pid() {
				t.Fatalf("pid file has %d, want %d", got, p.m.pid())
			}
			kids := testutil.Children(p.m.pid(), "")
			mark := filepath.Join(dir, "in-progress")
			slow, query := p.script, "sleep=700ms&"+markQuery(mark)
			if k.name != "helper" {
				slow = filepath.Join(filepath.Dir(p.script), "slow.lua")
				os.WriteFile(slow, []byte(fmt.Sprintf("io.open(%q, \"w\"):close()\nlocal t = os.clock() while os.clock() - t < 0.7 do end\nprint(\"Content-Type: text/plain\\r\\n\\r\\nslow-done\")\n", mark)), 0o644)
				query = ""
			}
			res := make(chan error, 1)
			go func() {
				body, err := request("unix", p.sock, slow, query)
				if err == nil && !strings.Contains(body, "slow-done") && !strings.Contains(body, "page-v1") {
					err = fmt.Errorf("body %q", body)
				}
				res <- err
			}()
			waitFile(t, mark)
			start := time.Now()
			p.m.signal(sigterm)
			if code := p.m.wait(25 * time.Second); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			t.Logf("stopped in %v", time.Since(start))
			if err := <-res; err != nil {
				t.Errorf("in-flight request failed: %v", err)
			}
			for _, pid := range kids {
				if testutil.Alive(pid) {
					t.Errorf("worker %d outlived the master", pid)
				}
			}
			if _, err := os.Stat(p.sock); err == nil {
				t.Errorf("socket %s not removed", p.sock)
			}
			if _, err := os.Stat(pidFile); err == nil {
				t.Errorf("pid file not removed")
			}
		})
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "2", "--", "/bin/false")
	// The back-off's growth and cap are the supervisor's unit tests; here
	// a real crash, twice per worker.
	if !poll(30*time.Second, func() bool { return len(lines(m.out.String(), "backoff=200ms")) >= 2 }) {
		t.Fatalf("no growing back-off in the log:\n%s", m.out.String())
	}
	for _, d := range []string{"backoff=100ms", "backoff=200ms"} {
		if n := len(lines(m.out.String(), d)); n != 2 {
			t.Errorf("%d lines with %s, want 2 (one per worker)", n, d)
		}
	}
	if len(lines(m.out.String(), "status=\"exit status 1\"")) == 0 {
		t.Errorf("exit status not logged")
	}
	select {
	case <-m.done:
		t.Fatalf("master exited")
	default:
	}
	starts := len(lines(m.out.String(), "worker started"))
	if starts > 8 {
		t.Errorf("%d starts in a few seconds: the crash loop spins", starts)
	}
	m.stop(sock)
}

func TestDaemonize(t *testing.T) {
	dir := t.TempDir()
	sock, pidFile, logFile := filepath.Join(dir, "d.sock"), filepath.Join(dir, "d.pid"), filepath.Join(dir, "d.log")
	code, out := runMagnetd(t, "-s", sock, "-P", pidFile, "-F", "2", "--log-file", logFile, "--", helperBin)
	if code != 0 || !regexp.MustCompile(`PID: \d+`).MatchString(out) {
		t.Fatalf("exit %d, output %q", code, out)
	}
	pid := readPID(t, pidFile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if !testutil.Alive(pid) {
		t.Fatalf("daemon %d not running", pid)
	}
	kids := waitChildren(t, pid, 2, 30*time.Second)
	if body, err := request("unix", sock, "", ""); err != nil || !strings.Contains(body, "pid=") {
		t.Fatalf("request: %q, %v", body, err)
	}
	// An error in the daemon reaches the first process's exit code.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, out = runMagnetd(t, "-s", filepath.Join(dir, "other.sock"), "--status-listen", busy.Addr().String(), "--", helperBin)
	if code != 255 || !strings.Contains(out, "--status-listen") {
		t.Errorf("daemon with a busy --status-listen: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.sock")); err == nil {
		t.Errorf("the failed daemon left its socket")
	}

	// A second start is refused and leaves the first one's files alone.
	code, out = runMagnetd(t, "-s", sock, "-P", pidFile, "--", helperBin)
	if code != 255 || readPID(t, pidFile) != pid {
		t.Errorf("second start: exit %d, output %q, pid file %d", code, out, readPID(t, pidFile))
	}
	// SIGUSR1 reopens the log file.
	os.Rename(logFile, logFile+".1")
	syscall.Kill(pid, syscall.SIGUSR1)
	if !poll(10*time.Second, func() bool { b, _ := os.ReadFile(logFile); return len(b) > 0 }) {
		t.Errorf("log file not reopened")
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if !poll(30*time.Second, func() bool { return !testutil.Alive(pid) }) {
		t.Fatalf("daemon still running")
	}
	for _, k := range kids {
		if testutil.Alive(k) {
			t.Errorf("worker %d outlived the daemon", k)
		}
	}
	for _, f := range []string{sock, pidFile} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s not removed", f)
		}
	}
	b, _ := os.ReadFile(logFile + ".1")
	if !strings.Contains(string(b), "worker started") {
		t.Errorf("log file lacks worker starts:\n%s", b)
	}
}

func TestInheritedSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lighttpd-0.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// As lighttpd's bin-path spawns it: the socket on fd 0, no -s or -p.
	m := startMaster(t, f, []string{"PHP_FCGI_CHILDREN=3"}, "--", helperBin)
	waitChildren(t, m.pid(), 3, 30*time.Second)
	body, err := request("unix", sock, "", "")
	if err != nil || !strings.Contains(body, "children=\n") {
		t.Errorf("request: %q, %v (PHP_FCGI_CHILDREN must not reach the workers)", body, err)
	}
	m.signal(sigterm)
	if code := m.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the inherited socket's file was removed: %v", err)
	}
}

func TestTCPAndPHPChildren(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			t.Logf("skipping %s: %v", addr, err)
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		m := startMaster(t, nil, nil, "-n", "-a", addr, "-p", fmt.Sprint(port), "-C", "5", "--", helperBin)
		hostport := net.JoinHostPort(addr, fmt.Sprint(port))
		var body string
		if !poll(30*time.Second, func() bool { body, err = request("tcp", hostport, "", ""); return err == nil }) {
			t.Fatalf("%s: %v", hostport, err)
		}
		if !strings.Contains(body, "children=5") {
			t.Errorf("-C 5: body %q", body)
		}
		m.signal(syscall.SIGINT)
		if code := m.wait(30 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
	}
}

func TestMaxRequestsRecycles(t *testing.T) {
	for _, k := range workerKinds {
		t.Run(k.name, func(t *testing.T) {
			p := k.start(t, 1, "--max-requests", "5")
			// The helper reports nothing on the scoreboard, so each of its
			// recycles backs off: fewer requests for it.
			requests := 23
			if k.name == "helper" {
				requests = 11
			}
			pids := map[string]bool{}
			for i := range requests {
				var body string
				var err error
				if !poll(30*time.Second, func() bool { body, err = request("unix", p.sock, p.script, ""); return err == nil }) {
					t.Fatalf("request %d: %v", i, err)
				}
				if m := regexp.MustCompile(`pid=\d+`).FindString(body); m != "" {
					pids[m] = true
				}
			}
			// 23 requests at 5 per worker need 5 workers; a worker may
			// finish a few requests already under way when it reaches
			// the limit, so ask for 3. The helper's 11 need exactly 3.
			n := len(lines(p.m.out.String(), "worker started"))
			if n < 3 {
				t.Errorf("%d worker starts for %d requests with --max-requests 5, want at least 3", n, requests)
			}
			if k.name == "helper" && len(pids) < 3 {
				t.Errorf("pids %v", pids)
			}
			// magnet-worker reports its requests on the scoreboard, so a
			// recycle is not taken for a crash.
			if k.name != "helper" {
				if b := lines(p.m.out.String(), "back-off"); len(b) > 0 {
					t.Errorf("recycles backed off: %q", b)
				}
			}
		})
	}
}

func TestWorkersDieWithMaster(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "3", "--", helperBin)
	kids := waitChildren(t, m.pid(), 3, 30*time.Second)
	m.waitLog("fcgihelper: serving", 30*time.Second)
	m.signal(syscall.SIGKILL)
	m.wait(30 * time.Second)
	if !poll(10*time.Second, func() bool {
		for _, k := range kids {
			if testutil.Alive(k) {
				return false
			}
		}
		return true
	}) {
		t.Errorf("workers %v outlived the killed master", kids)
	}
}

// TestDrainTimeout: a request longer than --drain-timeout is cut off by
// SIGKILL, and magnetd still exits 0 soon after the timeout; SIGQUIT stops
// gracefully as SIGTERM does.
func TestDrainTimeout(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "1", "--drain-timeout", "300ms", "--", helperBin)
	m.waitLog("fcgihelper: serving", 30*time.Second)
	kids := testutil.Children(m.pid(), "")
	res := make(chan error, 1)
	mark := filepath.Join(t.TempDir(), "in-progress")
	go func() { _, err := request("unix", sock, "", "sleep=60s&"+markQuery(mark)); res <- err }()
	waitFile(t, mark)
	start := time.Now()
	m.signal(syscall.SIGQUIT)
	if code := m.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stop took %v with a 300ms drain timeout", took)
	}
	if err := <-res; err == nil {
		t.Errorf("a 60s request survived a 300ms drain timeout")
	}
	m.waitLog(`reason="stop timeout"`, time.Second)
	for _, k := range kids {
		if testutil.Alive(k) {
			t.Errorf("worker %d still alive", k)
		}
	}
}

// TestSecondSignalKills: a second SIGTERM kills the workers at once. That
// one repeated at once does not is the supervisor's TestSecondSignal.
func TestSecondSignalKills(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "1", "--", helperBin)
	m.waitLog("fcgihelper: serving", 30*time.Second)
	mark := filepath.Join(t.TempDir(), "in-progress")
	go request("unix", sock, "", "sleep=60s&"+markQuery(mark))
	waitFile(t, mark)
	m.signal(sigterm)
	m.waitLog("stopping workers", 10*time.Second)
	// Repeat SIGTERM until one comes late enough to count as a second.
	killed := func() bool { return strings.Contains(m.out.String(), "second stop signal") }
	if !poll(10*time.Second, func() bool {
		m.cmd.Process.Signal(sigterm)
		return poll(50*time.Millisecond, killed)
	}) {
		t.Fatalf("repeated SIGTERMs did not kill the workers")
	}
	if code := m.wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	m.waitLog(`reason="second stop signal"`, time.Second)
}

// TestReloadBrokenProgram: when the new generation cannot run, the old
// workers keep serving until it can.
func TestReloadBrokenProgram(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "worker")
	good, _ := os.ReadFile(helperBin)
	os.WriteFile(prog, good, 0o755)
	sock := filepath.Join(dir, "m.sock")
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "2", "--", prog)
	old := waitChildren(t, m.pid(), 2, 30*time.Second)
	m.waitLog("fcgihelper: serving", 30*time.Second)

	replaceFile(t, prog, "#!/bin/sh\nexit 3\n")
	os.Chmod(prog, 0o755)
	m.signal(sighup)
	m.waitLog("no new worker is running", 30*time.Second)
	for i := range 10 {
		if body, err := request("unix", sock, "", ""); err != nil || !strings.Contains(body, "pid=") {
			t.Fatalf("request %d while the new program is broken: %q, %v", i, body, err)
		}
	}
	for _, pid := range old {
		if !testutil.Alive(pid) {
			t.Fatalf("old worker %d was stopped although no new one runs", pid)
		}
	}

	tmp := prog + ".new"
	os.WriteFile(tmp, good, 0o755)
	os.Rename(tmp, prog)
	if !poll(30*time.Second, func() bool {
		now := testutil.Children(m.pid(), "")
		return len(now) == 2 && !slices.Contains(now, old[0]) && !slices.Contains(now, old[1])
	}) {
		t.Fatalf("old workers %v not replaced once the program works: %v", old, testutil.Children(m.pid(), ""))
	}
	if body, err := request("unix", sock, "", ""); err != nil || !strings.Contains(body, "pid=") {
		t.Errorf("after the fix: %q, %v", body, err)
	}
}

// TestFcgiAppAndChdir: -f runs the program through /bin/sh, and -d is the
// workers' directory, where a relative program path is found.
func TestFcgiAppAndChdir(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile(helperBin)
	os.WriteFile(filepath.Join(dir, "helper"), b, 0o755)
	os.WriteFile(filepath.Join(dir, "page.txt"), []byte("relative page\n"), 0o644)
	for _, args := range [][]string{
		{"-f", filepath.Join(dir, "helper")},
		{"-d", dir, "--", "./helper"},
	} {
		sock := filepath.Join(t.TempDir(), "m.sock")
		m := startMaster(t, nil, nil, append([]string{"-n", "-s", sock}, args...)...)
		m.waitLog("fcgihelper: serving", 30*time.Second)
		body, err := request("unix", sock, "page.txt", "")
		if err != nil || !strings.Contains(body, "pid=") {
			t.Errorf("%q: %q, %v", args, body, err)
		}
		if args[0] == "-d" && !strings.Contains(body, "relative page") {
			t.Errorf("-d: the worker does not run in %s: %q", dir, body)
		}
		m.signal(sigterm)
		if code := m.wait(30 * time.Second); code != 0 {
			t.Errorf("%q: exit %d", args, code)
		}
	}
}
