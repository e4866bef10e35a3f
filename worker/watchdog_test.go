package worker

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/protocol"
)

// watchdogChild names the socket a re-executed test binary serves on as a
// worker with a one-second self-watchdog.
const watchdogChild = "MAGNET_TEST_WATCHDOG_SOCKET"

// stuckScript spends minutes inside string.find, in C, where the
// instruction hook behind Timeout never runs.
const stuckScript = `local s = string.rep("a", 3000)
print(s:find(".-.-.-b"))
`

// TestWatchdogEndsStuckWorker: a worker process whose request is stuck in
// C past its RequestTimeout logs the script and ends itself with status 2;
// the client sees the connection close then, not a hang. Timeout (the
// instruction hook) is shorter and cannot stop it.
func TestWatchdogEndsStuckWorker(t *testing.T) {
	if sock := os.Getenv(watchdogChild); sock != "" {
		runWatchdogChild(sock)
		return
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "w.sock")
	script := writeScript(t, dir, "stuck.lua", stuckScript)
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := testutil.SelfCommand("-test.run=^TestWatchdogEndsStuckWorker$")
	cmd.Env = append(os.Environ(), watchdogChild+"="+sock)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	c := dialWhenUp(t, sock, exited)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	_, err = c.Do(&protocol.Request{Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: "GET"}}})
	took := time.Since(start)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stuck request answered %v after %v; want the connection closed", err, took)
	}
	if took < time.Second || took > 3*time.Second {
		t.Errorf("connection closed after %v; want between the 1s limit and 3s", took)
	}
	t.Logf("stuck request to closed connection: %v", took)
	var exit *exec.ExitError
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("worker still running after its connection closed")
	}
	if !errors.As(waitErr, &exit) || exit.ExitCode() != exitWatchdog {
		t.Errorf("worker ended with %v, want exit status %d", waitErr, exitWatchdog)
	}
	out, _ := os.ReadFile(stderr.Name())
	if !strings.Contains(string(out), "request terminate timeout: ending the worker") || !strings.Contains(string(out), "stuck.lua") {
		t.Errorf("no log line naming the script:\n%s", out)
	}
}

// runWatchdogChild serves as a worker with a 1s self-watchdog and a 100ms
// instruction-hook timeout, then exits.
func runWatchdogChild(sock string) {
	fd, err := Listen(sock, 16)
	if err != nil {
		os.Exit(3)
	}
	srv, err := New(Config{ListenFD: fd, Timeout: 100 * time.Millisecond, RequestTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		os.Exit(3)
	}
	srv.Serve()
	os.Exit(0)
}

// dialWhenUp connects to the child's socket once it listens, or fails
// when the child exits first.
func dialWhenUp(t *testing.T, sock string, exited chan struct{}) *protocol.Client {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := protocol.Dial("unix", sock)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		select {
		case <-exited:
			t.Fatal("worker exited before listening")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not listening: %v", err)
		}
	}
}

// rssCount counts RecycledForRSS calls.
type rssCount struct {
	nopReporter
	n atomic.Int32
}

func (r *rssCount) RecycledForRSS() { r.n.Add(1) }

type nopReporter struct{}

func (nopReporter) Accepted()             {}
func (nopReporter) Begin(_, _, _ []byte)  {}
func (nopReporter) Details(int64, []byte) {}
func (nopReporter) End(uint64)            {}

// TestMaxRSSRecycles: a worker whose resident set passes MaxRSS (a script
// growing _G) stops gracefully: the request in progress is answered, the
// connection closed, Serve returns, and the recycle is logged and counted.
func TestMaxRSSRecycles(t *testing.T) {
	rss, ok := currentRSS()
	if !ok {
		t.Fatal("cannot read /proc/self/statm")
	}
	dir := t.TempDir()
	script := writeScript(t, dir, "grow.lua", `_G.hog = _G.hog or {}
local hog = _G.hog
hog[#hog + 1] = string.rep("x", 1024 * 1024 - 16) .. #hog
print("Content-Type: text/plain\r\n\r\n" .. #hog)
`)
	sock := filepath.Join(dir, "w.sock")
	fd, err := Listen(sock, 16)
	if err != nil {
		t.Fatal(err)
	}
	var log testutil.SyncBuffer
	rep := &rssCount{}
	srv, err := New(Config{ListenFD: fd, Scripts: scriptsIn(dir), MaxRSS: rss + 32<<20, Reporter: rep,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	c := dial(t, sock)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	answered := 0
	for ; answered < 400; answered++ {
		resp, err := c.Do(&protocol.Request{KeepConn: true, Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: "GET"}}})
		if err != nil {
			// The connection closed between requests: EOF, or EPIPE on
			// the next write.
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after %d requests: %v", answered, err)
			}
			break
		}
		if _, _, body, err := protocol.ParseCGI(resp.Stdout); err != nil || strings.TrimSpace(string(body)) != strconv.Itoa(answered+1) {
			t.Fatalf("request %d answered %q", answered, resp.Stdout)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("worker still serving after %d requests past max rss; log:\n%s", answered, log.String())
	}
	if answered == 0 || answered >= 400 {
		t.Errorf("%d requests answered", answered)
	}
	if rep.n.Load() != 1 || !strings.Contains(log.String(), "max rss reached, exiting") {
		t.Errorf("recycle counted %d times; log:\n%s", rep.n.Load(), log.String())
	}
}

func currentRSS() (uint64, bool) {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [128]byte
	return readRSS(int(f.Fd()), buf[:])
}

// watchedPair is serverPair with the self-watchdog and the RSS check on.
func watchedPair(tb testing.TB) (s *Server, c *conn, peer int, req []byte) {
	s, c, peer, req = serverPair(tb)
	s.cfg.RequestTimeout, s.cfg.MaxRSS = time.Minute, 1<<40
	s.wd.on = true
	tb.Cleanup(s.startWatchdog())
	return s, c, peer, req
}

// TestNoAllocWatchdog: the watchdog's per-request bookkeeping allocates
// nothing, nor does its goroutine reading the RSS meanwhile.
func TestNoAllocWatchdog(t *testing.T) {
	s, c, peer, req := watchedPair(t)
	noAllocRoundTrips(t, s, c, peer, req)
}

// BenchmarkServeConnWatchdog is BenchmarkServeConn with the self-watchdog
// and the RSS check on.
func BenchmarkServeConnWatchdog(b *testing.B) {
	s, c, peer, req := watchedPair(b)
	benchRoundTrips(b, s, c, peer, req)
}
