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
	"sync"
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

// load keeps conns keep-alive connections busy until stop is called, and
// counts the requests that fail. A request that fails on a reused
// connection may be retried once on a new connection, as nginx does for
// cached upstream connections; a fresh connection's failure is a failure.
type load struct {
	ok, failed, retried int
	errs                []string
	mu                  sync.Mutex
	stopc               chan struct{}
	wg                  sync.WaitGroup
}

func startLoad(network, addr, script, want string, conns int) *load {
	l := &load{stopc: make(chan struct{})}
	for range conns {
		l.wg.Add(1)
		go l.run(network, addr, script, want, false)
	}
	return l
}

// addFresh adds n clients that open a new connection for every request,
// where any failure counts.
func (l *load) addFresh(network, addr, script, want string, n int) {
	for range n {
		l.wg.Add(1)
		go l.run(network, addr, script, want, true)
	}
}

func (l *load) run(network, addr, script, want string, fresh bool) {
	defer l.wg.Done()
	var (
		c  *protocol.Client
		cc *countConn
	)
	dial := func() error {
		conn, err := net.Dial(network, addr)
		if err != nil {
			return err
		}
		cc = &countConn{Conn: conn}
		c = protocol.NewClient(cc)
		return nil
	}
	try := func() error {
		cc.read.Store(0)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		body, err := do(c, script, "", true)
		if err == nil && !strings.Contains(body, want) {
			err = fmt.Errorf("body %q lacks %q", body, want)
		}
		return err
	}
	for {
		select {
		case <-l.stopc:
			if c != nil {
				c.Close()
			}
			return
		default:
		}
		reused := c != nil
		var err error
		if c == nil {
			err = dial()
		}
		if err == nil {
			err = try()
			if err != nil && reused && cc.read.Load() == 0 {
				// The cached connection was closed under us before any
				// response byte: retry once on a new connection.
				c.Close()
				l.count(&l.retried, "")
				if err = dial(); err == nil {
					err = try()
				}
			}
		}
		if err != nil {
			l.count(&l.failed, fmt.Sprintf("%v (fresh=%v reused=%v read=%d)", err, fresh, reused, cc.read.Load()))
			if c != nil {
				c.Close()
				c = nil
			}
			time.Sleep(time.Millisecond)
			continue
		}
		l.count(&l.ok, "")
		if fresh {
			c.Close()
			c = nil
		}
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

func (l *load) count(n *int, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	*n++
	if msg != "" && len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
}

// waitOK waits until n more requests than so far have succeeded.
func (l *load) waitOK(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	want := l.ok + n
	l.mu.Unlock()
	if !poll(30*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ok >= want
	}) {
		t.Fatalf("load: no %d more good requests: %s", n, l)
	}
}

func (l *load) stop() {
	close(l.stopc)
	l.wg.Wait()
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("ok=%d failed=%d retried=%d errors=%q", l.ok, l.failed, l.retried, l.errs)
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
