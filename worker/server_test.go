package worker

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/protocol"
	"github.com/magnet-fcgi/magnet/scripts"
)

// startServer runs a worker on a unix socket in a temp dir.
func startServer(t testing.TB, cfg Config) (sock string, srv *Server) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "w.sock")
	fd, err := Listen(sock, 128)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ListenFD = fd
	return sock, serveOn(t, cfg)
}

// dial opens a FastCGI client connection, closed when the test ends.
func dial(t testing.TB, sock string) *protocol.Client {
	t.Helper()
	c, err := protocol.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveOn runs a worker on cfg.ListenFD until the test ends.
func serveOn(t testing.TB, cfg Config) *Server {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Shutdown()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("worker did not stop")
		}
		srv.Close()
	})
	return srv
}

func writeScript(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t testing.TB, c *protocol.Client, script string, keep bool, extra ...protocol.Pair) (int, string, *protocol.Response) {
	t.Helper()
	params := append([]protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: "GET"}}, extra...)
	resp, err := c.Do(&protocol.Request{KeepConn: keep, Params: params})
	if err != nil {
		t.Fatalf("request %s: %v", script, err)
	}
	status, _, body, err := protocol.ParseCGI(resp.Stdout)
	if err != nil {
		t.Fatalf("response of %s: %v (%q)", script, err, resp.Stdout)
	}
	return status, string(body), resp
}

func TestSeedOverSocket(t *testing.T) {
	sock, _ := startServer(t, Config{})
	root, _ := filepath.Abs("../examples")
	c := dial(t, sock)
	for i := 0; i < 5; i++ {
		status, body, resp := get(t, c, filepath.Join(root, "123.lua"), true)
		if status != 200 || body != "123" || !bytes.Contains(resp.Stdout, []byte("Content-Length: 3\r\n")) {
			t.Fatalf("got %d %q", status, resp.Stdout)
		}
	}
	_, body, _ := get(t, c, filepath.Join(root, "cache-admin.lua"), true)
	if !strings.Contains(body, "123.lua") || !strings.Contains(body, `<td align="right">5</td>`) {
		t.Fatalf("cache-admin: %s", body)
	}
}

func TestStatusCodes(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir)})
	bad := writeScript(t, dir, "bad.lua", "local x = nil\nreturn x.y\n")
	syntax := writeScript(t, dir, "syntax.lua", "print(")
	ok := writeScript(t, dir, "ok.lua", `print("Content-Type: text/plain\r\n\r\nok")`)
	txt := writeScript(t, dir, "x.txt", `print("no")`)
	os.Mkdir(filepath.Join(dir, "d.lua"), 0o755)
	outside := writeScript(t, t.TempDir(), "out.lua", `print("no")`)
	os.Symlink(outside, filepath.Join(dir, "link.lua"))

	c := dial(t, sock)
	cases := []struct {
		script string
		status int
	}{
		{bad, 500}, {ok, 200}, {syntax, 500}, {filepath.Join(dir, "missing.lua"), 404},
		{txt, 403}, {filepath.Join(dir, "d.lua"), 403}, {filepath.Join(dir, "link.lua"), 403}, {outside, 403}, {ok, 200},
	}
	for _, tc := range cases {
		status, _, resp := get(t, c, tc.script, true)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (%q)", tc.script, status, tc.status, resp.Stdout)
		}
		if tc.status == 500 && len(resp.Stderr) == 0 {
			t.Errorf("%s: no FCGI_STDERR for a 500", tc.script)
		}
	}
}

func scriptsIn(dir string) scripts.Config {
	return scripts.Config{DocRoots: []string{dir}}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	p := writeScript(t, dir, "r.lua", `print("Content-Type: text/plain\r\n\r\nv1")`)
	c := dial(t, sock)
	for i, want := range []string{"v1", "v22", "v333"} {
		if i > 0 {
			writeScript(t, dir, "r.lua", fmt.Sprintf(`print("Content-Type: text/plain\r\n\r\n%s")`, want))
		}
		if _, body, _ := get(t, c, p, true); body != want {
			t.Fatalf("rewrite %d: got %q want %q", i, body, want)
		}
	}
}

func TestConnectionPerRequestAndBody(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{})
	p := writeScript(t, dir, "echo.lua", `local b = io.read("*a") print("Content-Type: text/plain\r\n\r\n", #b, ":", b:sub(1, 5))`)
	for i := 0; i < 20; i++ {
		c, err := protocol.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Repeat("abcde", 30000) // several STDIN records
		resp, err := c.Do(&protocol.Request{Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: p}}, Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, out, _ := protocol.ParseCGI(resp.Stdout); string(out) != "150000:abcde" {
			t.Fatalf("got %q", out)
		}
		// without FCGI_KEEP_CONN the worker closes the connection
		c2 := c
		if _, err := c2.Do(&protocol.Request{Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: p}}}); err == nil {
			t.Fatal("connection stayed open without FCGI_KEEP_CONN")
		}
		c.Close()
	}
}

// TestNoStarvation: many keep-alive connections on one worker are served
// in turn, not one connection until it closes.
func TestNoStarvation(t *testing.T) {
	sock, _ := startServer(t, Config{})
	root, _ := filepath.Abs("../examples")
	script := filepath.Join(root, "123.lua")
	var clients []*protocol.Client
	for i := 0; i < 8; i++ {
		c := dial(t, sock)
		clients = append(clients, c)
	}
	for round := 0; round < 3; round++ {
		for _, c := range clients {
			if _, body, _ := get(t, c, script, true); body != "123" {
				t.Fatalf("got %q", body)
			}
		}
	}
}

func TestBadInputKeepsServing(t *testing.T) {
	sock, _ := startServer(t, Config{})
	root, _ := filepath.Abs("../examples")
	garbage := [][]byte{
		[]byte("GET / HTTP/1.0\r\n\r\n"),
		{1, 1, 0, 1, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0}, // unknown role
		{1, 4, 0, 1, 0xff, 0xff, 0, 0, 1},                // truncated params record
	}
	for _, g := range garbage {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(g)
		nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 256)
		nc.Read(buf)
		nc.Close()
	}
	// a 4 MiB params block is refused
	big := protocol.AppendBeginRequest(nil, 1, protocol.RoleResponder, 0)
	chunk := make([]byte, 60000)
	for i := 0; i < 70; i++ {
		big = protocol.AppendRecord(big, protocol.TypeParams, 1, chunk)
	}
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write(big)
	nc.Close()

	c := dial(t, sock)
	if _, body, _ := get(t, c, filepath.Join(root, "123.lua"), true); body != "123" {
		t.Fatalf("after bad input: %q", body)
	}
}

// TestLostWakeup: with EPOLLEXCLUSIVE the kernel wakes one waiting worker
// per new connection. If that worker dies or stops before accepting, the
// connection must still be answered by another worker.
func TestLostWakeup(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "w.sock")
	fd, err := Listen(sock, 16)
	if err != nil {
		t.Fatal(err)
	}
	// A "dying worker": first in the socket's wait queue, it takes the
	// wake-up for the next connection and never accepts.
	xfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(xfd)
	if err := unix.EpollCtl(xfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(fd)}); err != nil {
		t.Fatal(err)
	}
	woken := make(chan struct{})
	ev := make([]unix.EpollEvent, 1)
	go func() {
		for {
			if n, err := unix.EpollWait(xfd, ev, -1); n > 0 || (err != nil && err != unix.EINTR) {
				close(woken)
				return
			}
		}
	}()
	waitBlocked(t, "the dying worker in epoll_wait", onEpoll(xfd))

	srv := serveOn(t, Config{ListenFD: fd})
	waitBlocked(t, "the worker in epoll_wait", inEpollWait(srv))

	// Both sleep; the kernel wakes the first in the socket's queue.
	c := dial(t, sock)
	select {
	case <-woken:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not wake the waiter ahead of the worker")
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	root, _ := filepath.Abs("../examples")
	if _, body, _ := get(t, c, filepath.Join(root, "123.lua"), true); body != "123" {
		t.Fatalf("got %q", body)
	}
}

// TestConnectionBalance: a web server opening its pool of 8 keep-alive
// connections at once gets them spread over 2 workers sharing the
// listening socket. The split depends on scheduling (3/5 to 5/3 in 74 of
// 90 runs, against 19 of 30 before the worker yielded after accepting),
// so the test wants one such split in up to 5 tries.
func TestConnectionBalance(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, dir, "who.lua", `_G.me = _G.me or string.sub(tostring({}), 8) print("Content-Type: text/plain\r\n\r\n", me)`)
	sock := filepath.Join(dir, "w.sock")
	fd, err := Listen(sock, 64)
	if err != nil {
		t.Fatal(err)
	}
	idle := either(inEpollWait(serveOn(t, Config{ListenFD: fd})), inEpollWait(serveOn(t, Config{ListenFD: fd})))
	bothIdle := func() {
		t.Helper()
		waitBlockedN(t, "both workers in epoll_wait", 2, idle)
	}
	bothIdle()

	var splits []map[string]int
	for try := 0; try < 5; try++ {
		count := poolSplit(t, sock, script, 8)
		splits = append(splits, count)
		if len(count) == 2 {
			even := true
			for _, n := range count {
				even = even && n >= 3
			}
			if even {
				t.Logf("connections per worker: %v", splits)
				return
			}
		}
		bothIdle() // the pool is closed: both workers are waiting again
	}
	t.Fatalf("no even split of 8 connections over 2 workers in 5 tries: %v", splits)
}

// poolSplit opens conns keep-alive connections at once, sends requests on
// each and counts the connections each worker (told apart by who.lua)
// answered.
func poolSplit(t *testing.T, sock, script string, conns int) map[string]int {
	ids := make(chan string, conns)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := protocol.Dial("unix", sock)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var id string
			for k := 0; k < 20; k++ {
				resp, err := c.Do(&protocol.Request{KeepConn: true, Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}}})
				if err != nil {
					t.Error(err)
					return
				}
				_, _, body, _ := protocol.ParseCGI(resp.Stdout)
				if k > 0 && string(body) != id {
					t.Error("a keep-alive connection moved between workers")
					return
				}
				id = string(body)
			}
			ids <- id
		}()
	}
	wg.Wait()
	close(ids)
	count := map[string]int{}
	for id := range ids {
		count[id]++
	}
	return count
}

// TestNewFailsClean: when New fails late (a listening "socket" epoll
// cannot watch: a regular file), it closes the epoll set and the eventfd
// it had opened, and the Lua state.
func TestNewFailsClean(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fail := func() {
		t.Helper()
		if srv, err := New(Config{ListenFD: int(f.Fd())}); err == nil {
			srv.Close()
			t.Fatal("New accepted a regular file as its listening socket")
		}
	}
	fail() // whatever the runtime opens once is open now
	before := openFDs(t)
	for i := 0; i < 10; i++ {
		fail()
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d descriptors open before ten failed News, %d after", before, after)
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Settled runs once, after the SettledAfter-th request's answer was sent
// and before the next request is read.
func TestSettled(t *testing.T) {
	calls := make(chan struct{}, 10)
	sock, _ := startServer(t, Config{SettledAfter: 3, Settled: func() { calls <- struct{}{} }})
	root, _ := filepath.Abs("../examples")
	c := dial(t, sock)
	for i := 1; i <= 6; i++ {
		if status, body, _ := get(t, c, filepath.Join(root, "123.lua"), true); status != 200 || body != "123" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
		if i < 3 && len(calls) != 0 || i > 3 && len(calls) != 1 {
			t.Fatalf("after request %d, Settled ran %d times", i, len(calls))
		}
	}
}
