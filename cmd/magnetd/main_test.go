package main

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
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

// The signals the tests send most.
const (
	sigterm = syscall.SIGTERM
	sighup  = syscall.SIGHUP
)

// Binaries the tests run, built by TestMain.
var (
	repoRoot   string
	magnetdBin string // bin/magnetd, built without cgo
	workerBin  string // bin/magnet-worker, or "" when it does not build
	workerErr  string // why workerBin is empty
	helperBin  string // testdata/fcgihelper, a tiny FastCGI responder
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	bin := filepath.Join(repoRoot, "bin")
	os.MkdirAll(bin, 0o755)
	magnetdBin = filepath.Join(bin, "magnetd")
	if err := testutil.GoBuild(magnetdBin, "./cmd/magnetd", "CGO_ENABLED=0"); err != nil {
		fmt.Fprintf(os.Stderr, "building magnetd: %v\n", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "magnetd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if os.Getenv("MAGNETD_RACE") != "" {
		// Run the tests against a race-detecting magnetd (needs cgo), kept
		// beside bin/magnet-worker since it is magnetd's default program.
		magnetdBin = filepath.Join(bin, "magnetd-race")
		cmd := exec.Command("go", "build", "-race", "-o", magnetdBin, "./cmd/magnetd")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building magnetd -race: %v\n%s", err, out)
			return 1
		}
		defer os.Remove(magnetdBin)
	}
	helperBin = filepath.Join(tmp, "fcgihelper")
	if err := testutil.GoBuild(helperBin, "./cmd/magnetd/testdata/fcgihelper", "CGO_ENABLED=0"); err != nil {
		fmt.Fprintf(os.Stderr, "building fcgihelper: %v\n", err)
		return 1
	}
	wb := filepath.Join(bin, "magnet-worker")
	if err := testutil.GoBuild(wb, "./cmd/magnet-worker"); err != nil {
		workerErr = fmt.Sprintf("bin/magnet-worker does not build: %v", err)
		fmt.Fprintln(os.Stderr, "WARNING: "+workerErr)
	} else {
		workerBin = wb
	}
	return m.Run()
}

// needWorker fails a test that needs the real magnet-worker when it did
// not build.
func needWorker(t *testing.T) {
	t.Helper()
	if workerBin == "" {
		t.Fatal(workerErr)
	}
}

// master is a magnetd process started by a test.
type master struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
	err  error
}

// startMaster runs bin/magnetd with args, its output collected; the test's
// cleanup kills it if it still runs.
func startMaster(t *testing.T, stdin *os.File, env []string, args ...string) *master {
	t.Helper()
	m := &master{t: t, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(magnetdBin, args...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	m.cmd.Stdin = stdin
	m.cmd.Env = append(os.Environ(), env...)
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting magnetd: %v", err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			m.cmd.Process.Kill()
			<-m.done
		}
		if t.Failed() {
			t.Logf("magnetd output:\n%s", m.out.String())
		}
	})
	return m
}

func (m *master) pid() int { return m.cmd.Process.Pid }

func (m *master) signal(sig syscall.Signal) {
	m.t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for magnetd to exit and returns its exit code.
func (m *master) wait(timeout time.Duration) int {
	m.t.Helper()
	select {
	case <-m.done:
	case <-time.After(timeout):
		m.t.Fatalf("magnetd still running after %v", timeout)
	}
	return m.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and checks that the master exits 0 and removes its
// unix socket.
func (m *master) stop(sock string) {
	m.t.Helper()
	m.signal(sigterm)
	if code := m.wait(30 * time.Second); code != 0 {
		m.t.Errorf("exit %d", code)
	}
	if _, err := os.Stat(sock); err == nil {
		m.t.Errorf("socket not removed")
	}
}

// waitLog polls the output until it contains s.
func (m *master) waitLog(s string, timeout time.Duration) {
	m.t.Helper()
	if !poll(timeout, func() bool { return strings.Contains(m.out.String(), s) }) {
		m.t.Fatalf("magnetd output has no %q after %v", s, timeout)
	}
}

// poll calls f until it returns true or timeout passes.
func poll(timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// markQuery is the query that makes fcgihelper create the file mark when
// the request begins, so that a test knows it is in progress.
func markQuery(mark string) string { return "mark=" + url.QueryEscape(mark) }

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	if !poll(30*time.Second, func() bool { _, err := os.Stat(path); return err == nil }) {
		t.Fatalf("no %s after 30s", path)
	}
}

// waitChildren polls until pid has n running children and returns them.
func waitChildren(t *testing.T, pid, n int, timeout time.Duration) []int {
	t.Helper()
	var kids []int
	if !poll(timeout, func() bool { kids = testutil.Children(pid, ""); return len(kids) == n }) {
		t.Fatalf("process %d has children %v, want %d after %v", pid, kids, n, timeout)
	}
	return kids
}

// request sends one FastCGI request for script on a fresh connection and
// returns the CGI body.
func request(network, addr, script, query string) (string, error) {
	c, err := protocol.Dial(network, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return do(c, script, query, false)
}

func do(c *protocol.Client, script, query string, keep bool) (string, error) {
	resp, err := c.Do(&protocol.Request{KeepConn: keep, Params: []protocol.Pair{
		{Name: "SCRIPT_FILENAME", Value: script},
		{Name: "SCRIPT_NAME", Value: "/" + filepath.Base(script)},
		{Name: "REQUEST_METHOD", Value: "GET"},
		{Name: "QUERY_STRING", Value: query},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
		{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
	}})
	if err != nil {
		return "", err
	}
	if resp.ProtocolStatus != 0 || resp.AppStatus != 0 {
		return "", fmt.Errorf("protocol status %d, app status %d, stderr %q", resp.ProtocolStatus, resp.AppStatus, resp.Stderr)
	}
	status, _, body, err := protocol.ParseCGI(resp.Stdout)
	if err != nil {
		return "", err
	}
	if status != 0 && status != 200 {
		return "", fmt.Errorf("status %d: %q", status, body)
	}
	return string(body), nil
}

// startLoad runs keep clients over kept-alive connections and fresh ones
// over a new connection for each request, sending script to the pool at
// network addr and wanting want in the body, until the load is stopped (at
// the latest when the test ends). A request that fails on a reused
// connection before any response byte is retried once on a new
// connection, as nginx does for cached upstream connections; a fresh
// connection's failure is a failure.
func startLoad(t *testing.T, network, addr, script, want string, keep, fresh int) *testutil.Load {
	l := testutil.NewLoad()
	t.Cleanup(func() { l.Stop() })
	for i := range keep + fresh {
		c := &loadClient{network: network, addr: addr, script: script, want: want, fresh: i >= keep, load: l}
		l.AddClient(c.request, c.close)
	}
	return l
}

// loadClient is one client of startLoad; it owns its connection.
type loadClient struct {
	network, addr, script, want string
	fresh                       bool // a new connection for every request
	load                        *testutil.Load

	fc *protocol.Client // nil between connections
	cc *countConn
}

// request sends one request, over the kept connection if there is one.
func (c *loadClient) request() error {
	reused := c.fc != nil
	var err error
	if !reused {
		err = c.dial()
	}
	if err == nil {
		err = c.try()
		if err != nil && reused && c.cc.read.Load() == 0 {
			// The cached connection was closed under us before any
			// response byte: retry once on a new connection.
			c.close()
			c.load.CountRetry()
			if err = c.dial(); err == nil {
				err = c.try()
			}
		}
	}
	if err != nil {
		var read int64
		if c.cc != nil {
			read = c.cc.read.Load()
		}
		c.close()
		time.Sleep(time.Millisecond) // no busy loop while the pool is down
		return fmt.Errorf("%w (fresh=%v reused=%v read=%d)", err, c.fresh, reused, read)
	}
	if c.fresh {
		c.close()
	}
	return nil
}

func (c *loadClient) dial() error {
	conn, err := net.Dial(c.network, c.addr)
	if err != nil {
		return err
	}
	c.cc = &countConn{Conn: conn}
	c.fc = protocol.NewClient(c.cc)
	return nil
}

func (c *loadClient) try() error {
	c.cc.read.Store(0)
	c.fc.SetDeadline(time.Now().Add(30 * time.Second))
	body, err := do(c.fc, c.script, "", true)
	if err == nil && !strings.Contains(body, c.want) {
		err = fmt.Errorf("body %q lacks %q", body, c.want)
	}
	return err
}

// close closes the connection, if any.
func (c *loadClient) close() {
	if c.fc != nil {
		c.fc.Close()
		c.fc = nil
	}
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// readPID reads a pid file.
func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// lines counts the lines of s containing sub.
func lines(s, sub string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			out = append(out, sc.Text())
		}
	}
	return out
}
