package worker

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/handoff"
	"github.com/magnet-fcgi/magnet/protocol"
)

// holdReporter records the connections the worker says it holds.
type holdReporter struct {
	nopReporter
	n atomic.Int64
}

func (r *holdReporter) Holding(n int) { r.n.Store(int64(n)) }

// handoffWorker runs a worker with a hand-off channel whose other end,
// returned, the test holds as magnetd would.
func handoffWorker(t *testing.T, dir string) (sock string, srv *Server, master *net.UnixConn, rep *holdReporter) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "master")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rep = &holdReporter{}
	sock, srv = startServer(t, Config{Scripts: scriptsIn(dir), Reporter: rep, HandoffFD: fds[1]})
	master = c.(*net.UnixConn)
	if msg, _, ok := masterRecv(t, master, 10*time.Second); !ok || msg[0] != handoff.Ready {
		t.Fatalf("the worker's first message is %q (%v); want that it serves", msg, ok)
	}
	// When the test ends the worker stops and says it leaves: answer as
	// magnetd in a full stop, so that it closes its connections and exits.
	t.Cleanup(func() {
		master.SetReadDeadline(time.Time{})
		go func() {
			b := make([]byte, 8)
			for {
				n, _, _, _, err := master.ReadMsgUnix(b, nil)
				if err != nil {
					return
				}
				if n > 0 && b[0] == handoff.Leaving {
					master.WriteMsgUnix([]byte{handoff.Ack, 1}, nil, nil)
				}
			}
		}()
	})
	return sock, srv, master, rep
}

// masterRecv reads one message from the worker, with its descriptors.
func masterRecv(t *testing.T, c *net.UnixConn, wait time.Duration) (msg []byte, fds []int, ok bool) {
	t.Helper()
	buf := make([]byte, 8)
	oob := make([]byte, unix.CmsgSpace(4*handoff.MaxFDs))
	c.SetReadDeadline(time.Now().Add(wait))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, false
	}
	fds = handoff.ParseRights(oob[:oobn])
	t.Cleanup(func() { handoff.CloseAll(fds) })
	return buf[:n], fds, true
}

func waitHolding(t *testing.T, rep *holdReporter, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rep.n.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the worker holds %d connections; want %d", rep.n.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReleaseWhileScriptRuns: asked to release while a script runs, the
// worker hands over its idle connections only: not the one whose script
// runs, not one with a request half read. Back from the script, the loop
// settles its count and serves on, new connections included.
func TestReleaseWhileScriptRuns(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "go")
	wait := writeScript(t, dir, "wait.lua", `while not io.open(os.getenv("FLAG")) do end
print("Content-Type: text/plain\r\n\r\nwaited")`)
	quick := writeScript(t, dir, "quick.lua", `print("Content-Type: text/plain\r\n\r\nquick")`)
	sock, srv, master, rep := handoffWorker(t, dir)

	running := dial(t, sock)
	var idle [2]net.Conn
	for i := range idle {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle[i] = c
	}
	half, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { half.Close() })
	// A request whose PARAMS have not all come: the worker has begun it.
	var req []byte
	req = protocol.AppendBeginRequest(req, 1, protocol.RoleResponder, protocol.FlagKeepConn)
	if _, err := half.Write(req); err != nil {
		t.Fatal(err)
	}
	waitHolding(t, rep, 4)

	done := make(chan string, 1)
	go func() {
		_, body, _ := get(t, running, wait, true, protocol.Pair{Name: "FLAG", Value: flag})
		done <- body
	}()
	// Ask until the reader finds the script running (TryLock succeeds).
	var fds []int
	deadline := time.Now().Add(10 * time.Second)
	for fds == nil {
		if time.Now().After(deadline) {
			t.Fatal("the worker released nothing while its script ran")
		}
		if _, _, err := master.WriteMsgUnix([]byte{handoff.Release}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if msg, got, ok := masterRecv(t, master, 20*time.Millisecond); ok {
			if msg[0] != handoff.Conns {
				t.Fatalf("the worker sent %q; want connections", msg)
			}
			fds = got
		}
	}
	if len(fds) != 2 {
		t.Fatalf("the worker released %d connections; want the 2 idle ones", len(fds))
	}
	// They are the idle connections: what their clients write arrives on
	// the descriptors received.
	for i, c := range idle {
		if _, err := c.Write([]byte{'a' + byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[byte]bool{}
	for _, fd := range fds {
		var pfd = []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(pfd, 5000)
		b := make([]byte, 1)
		if n, _ := unix.Read(fd, b); n == 1 {
			seen[b[0]] = true
		}
	}
	if !seen['a'] || !seen['b'] {
		t.Fatalf("the released descriptors carried %v; want the idle clients' a and b", seen)
	}
	// The worker counts them once sendmsg has returned, which may be after
	// the descriptors arrived here: wait for the count.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _ := srv.Handoffs()
		if out == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Handoffs out = %d; want 2", out)
		}
		runtime.Gosched()
	}

	os.WriteFile(flag, nil, 0o644)
	if body := <-done; body != "waited" {
		t.Fatalf("the running request answered %q", body)
	}
	waitHolding(t, rep, 2)
	// The connection whose request was half read is still served here.
	rest := protocol.AppendParams(nil, 1, []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: quick}, {Name: "REQUEST_METHOD", Value: "GET"}})
	rest = protocol.AppendHeader(rest, protocol.TypeStdin, 1, 0, 0)
	if _, err := half.Write(rest); err != nil {
		t.Fatal(err)
	}
	half.SetDeadline(time.Now().Add(10 * time.Second))
	var out []byte
	_, _, err = protocol.ReadResponse(bufio.NewReader(half), 1, func(b []byte) { out = append(out, b...) }, nil)
	if err != nil || !strings.Contains(string(out), "quick") {
		t.Fatalf("the half-read request: %q %v", out, err)
	}
	// The loop serves on: the running connection and new ones, which
	// may reuse the descriptors handed over.
	if _, body, _ := get(t, running, quick, true); body != "quick" {
		t.Fatalf("after the release the running connection answered %q", body)
	}
	for range 3 {
		if _, body, _ := get(t, dial(t, sock), quick, true); body != "quick" {
			t.Fatalf("a new connection answered %q", body)
		}
	}
	waitHolding(t, rep, 5)
}

// TestReleaseBetweenScripts: a release that comes while no script runs
// moves nothing: the loop owns its connections.
func TestReleaseBetweenScripts(t *testing.T) {
	dir := t.TempDir()
	quick := writeScript(t, dir, "quick.lua", `print("Content-Type: text/plain\r\n\r\nquick")`)
	sock, srv, master, rep := handoffWorker(t, dir)
	c := dial(t, sock)
	get(t, c, quick, true)
	dial(t, sock)
	waitHolding(t, rep, 2)
	for range 5 {
		if _, _, err := master.WriteMsgUnix([]byte{handoff.Release}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if msg, fds, ok := masterRecv(t, master, 200*time.Millisecond); ok {
		t.Fatalf("an idle worker asked to release sent %q with %d connections", msg, len(fds))
	}
	if out, _ := srv.Handoffs(); out != 0 {
		t.Fatalf("Handoffs out = %d; want 0", out)
	}
	if _, body, _ := get(t, c, quick, true); body != "quick" {
		t.Fatalf("answered %q", body)
	}
}

// TestAdoptWithRequestWaiting: a connection handed over with a request
// already in the kernel's buffer is read and answered at once.
func TestAdoptWithRequestWaiting(t *testing.T) {
	dir := t.TempDir()
	quick := writeScript(t, dir, "quick.lua", `print("Content-Type: text/plain\r\n\r\nquick")`)
	_, srv, master, rep := handoffWorker(t, dir)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(pair[0]), "client")
	client, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	pc := protocol.NewClient(client)
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	answered := make(chan string, 1)
	go func() {
		resp, err := pc.Do(&protocol.Request{KeepConn: true, Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: quick}, {Name: "REQUEST_METHOD", Value: "GET"}}})
		if err != nil {
			answered <- err.Error()
			return
		}
		answered <- string(resp.Stdout)
	}()
	// Hand the server end over once the request sits in its buffer.
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n == 0; n, _ = unix.IoctlGetInt(pair[1], unix.SIOCINQ) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the socket")
		}
		time.Sleep(time.Millisecond)
	}
	if _, _, err := master.WriteMsgUnix([]byte{handoff.Conns}, unix.UnixRights(pair[1]), nil); err != nil {
		t.Fatal(err)
	}
	unix.Close(pair[1])
	if out := <-answered; !strings.Contains(out, "quick") {
		t.Fatalf("the adopted connection answered %q", out)
	}
	if _, in := srv.Handoffs(); in != 1 {
		t.Errorf("Handoffs in = %d; want 1", in)
	}
	waitHolding(t, rep, 1)
}
