package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/protocol"
)

// The adversarial suite: each attack of issue 8 against a real magnetd -F 2
// with magnet-worker, over the unix socket, while a steady 123.lua load
// runs on the same pool and every body it gets is checked. For each attack
// the test records the answer, the time to it, the log line, whether a
// worker was replaced, and the workers' peak resident memory; it requires
// the load to see no failure and every worker's memory after the attack to
// stay under the Lua memory limit plus rssMargin.

// The pool's limits are short so that the suite stays quick.
const (
	advMemoryLimit = 32 << 20
	// rssMargin is what a worker may hold beyond its Lua heap limit: the Go
	// runtime, the Lua libraries, the read and write buffers.
	rssMargin = 64 << 20
)

// advWorkerFlags are the workers' flags (after "--" on magnetd's command
// line, so that magnetd runs exactly this program). The send timeout is
// well below the request terminate timeout (1s), so that a client that
// never reads is dropped by the worker, not ended by the watchdog.
var advWorkerFlags = []string{
	"--timeout", "500ms", "--memory-limit", "32M", "--read-timeout", "1s", "--send-timeout", "300ms",
	"--idle-timeout", "2s", "--max-conns", "100", "--max-body", "1M", "--log-level", "debug",
}

// attack is one row of the suite.
type attack struct {
	name     string
	script   string   // Lua source of <dir>/attack.lua, if the attack runs one
	flags    []string // extra worker flags; a pool of its own
	do       func(t *testing.T, p *advPool) string
	answer   string // what the answer must contain
	log      string // what the log must say ("" nothing)
	figure   string // a status page figure that must grow ("" none)
	replaced bool   // the attack kills a worker, which is replaced
}

func TestAdversarial(t *testing.T) {
	needWorker(t)
	magnetd := buildMagnetd(t)
	raiseNofile(t, 6000)
	empty := t.TempDir()
	many := memDir(t)
	t0 := time.Now()
	fillDir(t, many, 100000)
	t.Logf("100,000 files made in %v", time.Since(t0).Round(time.Millisecond))

	attacks := []attack{
		{name: "metatable on magnet.cache", script: `local bad = {__index = function() error("no") end, __newindex = function() error("no") end}
for _, e in pairs(magnet.cache) do setmetatable(e, bad) end
setmetatable(magnet.cache, bad)
error("metatables set")`, do: twice, answer: "500 500", log: "metatables set"},
		{name: "Go function, 100,000 results", script: fmt.Sprintf(`local t = magnet.fs.readdir(%q)
print("Content-Type: text/plain\r\n\r\n" .. #t)`, many), do: once, answer: "200 100000"},
		{name: "memory doubling", script: `local s = "x" while true do s = s .. s end`, do: once, answer: "500", log: "memory limit"},
		{name: `string.rep("ab", 2^30)`, script: `local s = string.rep("ab", 2^30) print(#s)`, do: once, answer: "500", log: "memory limit"},
		{name: "catastrophic pattern", script: `local s = string.rep("a", 3000) print(s:find(".-.-.-b"))`, do: once,
			answer: "closed", log: "request terminate timeout: killing worker", replaced: true},
		{name: `os.execute("sleep 30")`, script: `os.execute("sleep 30") print("woke")`, do: once,
			answer: "closed", log: "request terminate timeout: killing worker", replaced: true},
		{name: "deep recursion", script: `local function f(n) return 1 + f(n + 1) end print(f(1))`, do: once, answer: "500", log: "stack overflow"},
		{name: "slowloris", do: slowloris, answer: "closed", log: `reason="read timeout"`, figure: "read timeouts"},
		{name: "BEGIN_REQUEST only", do: beginOnly, answer: "closed", log: `reason="read timeout"`, figure: "read timeouts"},
		{name: "5,000 idle connections", do: idleFlood, answer: "refused", log: "connection cap reached", figure: "accept pauses"},
		{name: "100,000 query args", do: func(t *testing.T, p *advPool) string {
			return p.do(t, "attack.lua", nil, protocol.Pair{Name: "QUERY_STRING", Value: strings.Repeat("a=1&", 100000)})
		}, script: `print("Content-Type: text/plain\r\n\r\nran")`, answer: "431", log: "answering 431", figure: "refused requests"},
		{name: "1,005 params", do: func(t *testing.T, p *advPool) string {
			var extra []protocol.Pair
			for i := range 1005 {
				extra = append(extra, protocol.Pair{Name: "X_" + strconv.Itoa(i), Value: "1"})
			}
			return p.do(t, "attack.lua", nil, extra...)
		}, script: `print("Content-Type: text/plain\r\n\r\nran")`, answer: "431", log: "answering 431", figure: "refused requests"},
		{name: "1 GiB response, client never reads", script: `local s = string.rep("x", 1048576)
for i = 1, 1024 do io.write(s) end`, do: neverRead, answer: "dropped", log: `reason="send timeout"`, figure: "send timeouts"},
		{name: "1 GiB body", script: `print("Content-Type: text/plain\r\n\r\n" .. #magnet.request.body())`, do: func(t *testing.T, p *advPool) string {
			return p.do(t, "attack.lua", io.LimitReader(zeros{}, 1<<30), protocol.Pair{Name: "CONTENT_LENGTH", Value: strconv.Itoa(1 << 30)})
		}, answer: "413", log: "answering 413"},
		{name: "/etc/shadow under --sandbox", flags: []string{"--sandbox", "--open-basedir", empty},
			script: `local f, err = io.open("/etc/shadow")
print("Content-Type: text/plain\r\n\r\n" .. tostring(f) .. " " .. tostring(err))`, do: once, answer: "500", log: "outside --open-basedir"},
	}

	pools := map[string]*advPool{}
	var table []string
	start := time.Now()
	for _, a := range attacks {
		key := strings.Join(a.flags, " ")
		p := pools[key]
		if p == nil {
			p = startAdvPool(t, magnetd, a.flags)
			pools[key] = p
		}
		table = append(table, p.run(t, a))
	}
	for _, p := range pools {
		p.stop(t)
	}
	t.Logf("%d attacks in %v\nattack | answer | time to answer | peak RSS | worker replaced | log\n%s",
		len(attacks), time.Since(start).Round(time.Millisecond), strings.Join(table, "\n"))
}

// advPool is a magnetd -F 2 with its load.
type advPool struct {
	dir, sock string
	port      int
	cmd       *exec.Cmd
	out       testutil.SyncBuffer
	load      *testutil.Load
	exited    chan struct{}
}

func startAdvPool(t *testing.T, magnetd string, flags []string) *advPool {
	t.Helper()
	p := &advPool{dir: t.TempDir(), port: testutil.FreePort(t), exited: make(chan struct{})}
	p.sock = filepath.Join(p.dir, "m.sock")
	seed, err := os.ReadFile(filepath.Join(repoRoot, "examples", "123.lua"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "123.lua"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-n", "-s", p.sock, "-F", "2", "--request-terminate-timeout", "1s", "--log-level", "debug",
		"--status-listen", fmt.Sprintf("127.0.0.1:%d", p.port), "--", workerBin, "--docroot", p.dir}
	args = append(append(args, advWorkerFlags...), flags...)
	p.cmd = exec.Command(magnetd, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	if !waitUntil(30*time.Second, func() bool {
		_, err := p.fcgi(t, "123.lua", nil)
		return err == nil && len(p.workers()) == 2
	}) {
		t.Fatalf("pool not up; log:\n%s", p.out.String())
	}
	p.load = testutil.NewLoad()
	for range 2 {
		c := &steadyClient{sock: p.sock, script: filepath.Join(p.dir, "123.lua"), load: p.load, pace: time.NewTicker(time.Millisecond)}
		p.load.AddClient(c.request, c.end)
	}
	p.load.WaitAnswered(t, 100, 30*time.Second)
	return p
}

// run makes one attack and returns its table row.
func (p *advPool) run(t *testing.T, a attack) string {
	t.Helper()
	if a.script != "" {
		if err := os.WriteFile(filepath.Join(p.dir, "attack.lua"), []byte(a.script), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := p.workers()
	for _, pid := range before {
		os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) // resets VmHWM
	}
	var fig float64
	if a.figure != "" {
		fig = p.figure(t, a.figure)
	}
	logAt := len(p.out.String())
	_, failedBefore, _ := p.loadCounts()
	t0 := time.Now()
	answer := a.do(t, p)
	took := time.Since(t0)
	peak := uint64(0)
	for _, pid := range p.workers() {
		peak = max(peak, procKB(pid, "VmHWM")*1024)
	}

	if !strings.Contains(answer, a.answer) {
		t.Errorf("%s: answered %q, want %q", a.name, answer, a.answer)
	}
	var line string
	if a.log != "" {
		waitUntil(10*time.Second, func() bool {
			line = lineWith(p.out.String()[logAt:], a.log)
			return line != ""
		})
		if line == "" {
			t.Errorf("%s: no log line with %q:\n%s", a.name, a.log, p.out.String()[logAt:])
		}
	}
	var now []int
	replaced := waitUntil(15*time.Second, func() bool {
		now = p.workers()
		return len(now) == 2 && (!a.replaced || slices.ContainsFunc(now, func(pid int) bool { return !slices.Contains(before, pid) }))
	})
	if !replaced {
		t.Errorf("%s: workers %v (before %v), want 2%s", a.name, now, before, map[bool]string{true: ", one new"}[a.replaced])
	}
	if !a.replaced && !slices.Equal(now, before) {
		t.Errorf("%s: workers changed from %v to %v", a.name, before, now)
	}
	if a.figure != "" {
		if !waitUntil(5*time.Second, func() bool { return p.figure(t, a.figure) > fig }) {
			t.Errorf("%s: status page %q stayed at %v", a.name, a.figure, fig)
		}
	}
	// the load keeps being answered, correctly, after the attack too
	p.load.WaitAnswered(t, p.load.Answered()+50, 30*time.Second)
	if _, failed, errs := p.loadCounts(); failed != failedBefore {
		t.Errorf("%s: %d load requests failed: %q", a.name, failed-failedBefore, errs)
	}
	for _, pid := range now {
		if rss := procKB(pid, "VmRSS") * 1024; rss > advMemoryLimit+rssMargin {
			t.Errorf("%s: worker %d holds %d MiB after the attack, over the %d MiB limit plus the %d MiB margin",
				a.name, pid, rss>>20, advMemoryLimit>>20, rssMargin>>20)
		}
	}
	// the row: no timestamp, paths relative to the pool's directory
	if _, rest, ok := strings.Cut(line, " "); ok && strings.HasPrefix(line, "time=") {
		line = rest
	}
	line = strings.ReplaceAll(line, p.dir+"/", "")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	if len(answer) > 100 {
		answer = answer[:100] + "…"
	}
	return fmt.Sprintf("%s | %s | %v | %d MiB | %v | %s", a.name, answer, took.Round(time.Millisecond), peak>>20, a.replaced, line)
}

func (p *advPool) loadCounts() (ok, failed int, errs []string) {
	s := p.load.String() // "ok=%d failed=%d retried=%d errors=%q"
	fmt.Sscanf(s, "ok=%d failed=%d", &ok, &failed)
	if i := strings.Index(s, "errors="); i >= 0 {
		errs = []string{s[i:]}
	}
	return ok, failed, errs
}

func (p *advPool) stop(t *testing.T) {
	t.Helper()
	ok, failed, errs := p.load.Stop()
	t.Logf("load on the pool: %d answered, %d failed (%s)", ok, failed, p.load)
	if failed > 0 || ok == 0 {
		t.Errorf("steady load: %d ok, %d failed: %q", ok, failed, errs)
	}
}

// workers are magnetd's live children, sorted.
func (p *advPool) workers() []int {
	w := testutil.Children(p.cmd.Process.Pid, "")
	slices.Sort(w)
	return w
}

// figure reads a pool figure from the JSON status page.
func (p *advPool) figure(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status?json", p.port))
	if err != nil {
		t.Fatalf("status page: %v", err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("status page: %v", err)
	}
	f, ok := v[name].(float64)
	if !ok {
		t.Fatalf("status page has no %q", name)
	}
	return f
}

// fcgi sends one request for script on a new connection.
func (p *advPool) fcgi(t *testing.T, script string, body io.Reader, extra ...protocol.Pair) (*protocol.Response, error) {
	c, err := protocol.Dial("unix", p.sock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	params := append([]protocol.Pair{{Name: "SCRIPT_FILENAME", Value: filepath.Join(p.dir, script)},
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "REQUEST_URI", Value: "/" + script}}, extra...)
	return c.Do(&protocol.Request{Params: params, Body: body})
}

// do sends a request and describes the answer: "STATUS BODY", or
// "closed" when the connection closed without one.
func (p *advPool) do(t *testing.T, script string, body io.Reader, extra ...protocol.Pair) string {
	t.Helper()
	resp, err := p.fcgi(t, script, body, extra...)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: no answer in 30s", script)
		}
		return "closed (" + err.Error() + ")"
	}
	status, _, b, err := protocol.ParseCGI(resp.Stdout)
	if err != nil {
		return fmt.Sprintf("unparsable %q", resp.Stdout)
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", status, bytes.TrimSpace(b)))
}

func (p *advPool) get(t *testing.T, script string) string {
	t.Helper()
	return p.do(t, script, nil)
}

func once(t *testing.T, p *advPool) string { return p.get(t, "attack.lua") }

// twice runs the attack script twice: the second run meets what the first
// left behind.
func twice(t *testing.T, p *advPool) string {
	first := p.get(t, "attack.lua")
	return strings.Fields(first)[0] + " " + strings.Fields(p.get(t, "attack.lua"))[0]
}

// slowloris sends a request one byte every 100 ms and reports when the
// worker closed the connection.
func slowloris(t *testing.T, p *advPool) string {
	req := protocol.EncodeRequest(nil, &protocol.Request{Params: []protocol.Pair{
		{Name: "SCRIPT_FILENAME", Value: filepath.Join(p.dir, "123.lua")}, {Name: "REQUEST_METHOD", Value: "GET"},
		{Name: "HTTP_X_PAD", Value: strings.Repeat("x", 200)}}})
	c, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for i := range req {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(req[i : i+1]); err != nil {
			return fmt.Sprintf("closed after %v, %d of %d bytes sent", time.Since(start).Round(time.Millisecond), i, len(req))
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var b [64]byte
		if _, err := c.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Sprintf("closed after %v, %d of %d bytes sent", time.Since(start).Round(time.Millisecond), i+1, len(req))
		}
	}
	return "answered: all bytes sent"
}

// beginOnly sends BEGIN_REQUEST and nothing more.
func beginOnly(t *testing.T, p *advPool) string {
	c, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.Write(protocol.AppendBeginRequest(nil, 1, protocol.RoleResponder, protocol.FlagKeepConn))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "held for 10s"
	}
	return fmt.Sprintf("closed after %v, %d bytes answered", time.Since(start).Round(time.Millisecond), n)
}

// idleFlood opens 5,000 connections that send nothing, without blocking:
// the workers take --max-conns each and stop accepting, the listen queue
// takes its backlog, the kernel refuses the rest. Then it closes them and
// checks that new connections are served again.
func idleFlood(t *testing.T, p *advPool) string {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	refused := 0
	for range 5000 {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("socket after %d: %v", len(fds), err)
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: p.sock}); err != nil {
			unix.Close(fd)
			refused++
			continue
		}
		fds = append(fds, fd)
	}
	// the workers hold their caps and pause
	waitUntil(10*time.Second, func() bool { return p.figure(t, "accept pauses") > 0 })
	held := len(fds)
	for _, fd := range fds {
		unix.Close(fd)
	}
	fds = nil
	// the closed connections still queued are accepted and dropped first
	closed := time.Now()
	var got string
	if !waitUntil(15*time.Second, func() bool { got = p.get(t, "123.lua"); return got == "200 123" }) {
		return "not served after the flood: " + got
	}
	return fmt.Sprintf("%d connected, %d refused by the kernel (listen queue full); served again %v after the close",
		held, refused, time.Since(closed).Round(time.Millisecond))
}

// neverRead asks for a 1 GiB response and reads nothing.
func neverRead(t *testing.T, p *advPool) string {
	c, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.UnixConn).SetReadBuffer(4096)
	start := time.Now()
	c.Write(protocol.EncodeRequest(nil, &protocol.Request{Params: []protocol.Pair{
		{Name: "SCRIPT_FILENAME", Value: filepath.Join(p.dir, "attack.lua")}, {Name: "REQUEST_METHOD", Value: "GET"}}}))
	// the worker drops us after --send-timeout: wait for that in the log,
	// then see how much reached us
	if !waitUntil(20*time.Second, func() bool { return strings.Contains(p.out.String(), `reason="send timeout"`) }) {
		return "still connected after 20s"
	}
	took := time.Since(start)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	return fmt.Sprintf("dropped after %v, %d KiB had reached the socket", took.Round(time.Millisecond), n>>10)
}

// steadyClient is one client of the load: 123.lua over a kept-alive
// connection, every body checked. A connection closed before any answer
// byte is retried once on a new one, as nginx retries a cached upstream
// connection; that is the only retry. It sends at most one request per
// tick of pace, so that the load leaves the shared CPUs to the attacks.
type steadyClient struct {
	sock, script string
	load         *testutil.Load
	pace         *time.Ticker
	c            *protocol.Client
	cc           *countingConn
}

func (s *steadyClient) request() error {
	<-s.pace.C
	reused := s.c != nil
	if !reused {
		if err := s.dial(); err != nil {
			return err
		}
	}
	err := s.try()
	if err != nil && reused && s.cc.n == 0 {
		s.close()
		s.load.CountRetry()
		if err = s.dial(); err == nil {
			err = s.try()
		}
	}
	if err != nil {
		s.close()
	}
	return err
}

func (s *steadyClient) dial() error {
	nc, err := net.Dial("unix", s.sock)
	if err != nil {
		return err
	}
	s.cc = &countingConn{Conn: nc}
	s.c = protocol.NewClient(s.cc)
	return nil
}

func (s *steadyClient) try() error {
	s.cc.n = 0
	s.c.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := s.c.Do(&protocol.Request{KeepConn: true, Params: []protocol.Pair{
		{Name: "SCRIPT_FILENAME", Value: s.script}, {Name: "REQUEST_METHOD", Value: "GET"}}})
	if err != nil {
		return err
	}
	status, _, body, err := protocol.ParseCGI(resp.Stdout)
	if err != nil || status != 200 || string(body) != "123" {
		return fmt.Errorf("123.lua answered %d %q (%v)", status, body, err)
	}
	return nil
}

func (s *steadyClient) end() {
	s.pace.Stop()
	s.close()
}

func (s *steadyClient) close() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

// countingConn counts the bytes read, to tell a connection closed before
// an answer from one closed during it.
type countingConn struct {
	net.Conn
	n int
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n += n
	return n, err
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

var (
	magnetdOnce sync.Once
	magnetdBin  string
	magnetdErr  error
)

// buildMagnetd builds magnetd beside the magnet-worker TestMain built.
func buildMagnetd(t *testing.T) string {
	t.Helper()
	magnetdOnce.Do(func() {
		magnetdBin = filepath.Join(filepath.Dir(workerBin), "magnetd")
		magnetdErr = testutil.GoBuild(magnetdBin, "./cmd/magnetd", "CGO_ENABLED=0")
	})
	if magnetdErr != nil {
		t.Fatalf("building magnetd: %v", magnetdErr)
	}
	return magnetdBin
}

// raiseNofile raises the test's descriptor limit for the idle flood.
func raiseNofile(t *testing.T, n uint64) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("RLIMIT_NOFILE hard limit %d, the idle flood needs %d", lim.Max, n)
	}
	old := lim
	lim.Cur = n
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}

// memDir is a temporary directory on tmpfs where there is one (making
// 100,000 files there is several times quicker than on a disk).
func memDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "magnet-adversarial-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fillDir makes n empty files in dir.
func fillDir(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		fd, err := unix.Open(filepath.Join(dir, strconv.Itoa(i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
}

// procKB reads a "kB" field of /proc/pid/status.
func procKB(pid int, field string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
