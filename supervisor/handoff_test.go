package supervisor

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/handoff"
)

// handoffPool is a pool of n workers with the hand-off on, each worker's
// end of its channel open in the test.
func handoffPool(t *testing.T, n int) (*pool, map[int]*net.UnixConn) {
	t.Helper()
	p := startPool(t, n, func(c *Config, _ *fakeOS) {
		c.Handoff = true
		c.HandoffAfter = 10 * time.Millisecond
	})
	ends := map[int]*net.UnixConn{}
	for _, pid := range p.running() {
		ends[pid] = workerEnd(t, p, pid)
		ready(t, p, pid, ends[pid])
	}
	return p, ends
}

// ready says, from worker pid's end, that it serves, and waits until the
// supervisor took it in.
func ready(t *testing.T, p *pool, pid int, c *net.UnixConn) {
	t.Helper()
	if _, _, err := c.WriteMsgUnix([]byte{handoff.Ready}, nil, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := make(chan bool, 1)
		p.s.post(func() { got <- p.s.procs[pid] != nil && p.s.procs[pid].ho.ready })
		if <-got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %d not ready", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// workerEnd is worker pid's end of its hand-off channel.
func workerEnd(t *testing.T, p *pool, pid int) *net.UnixConn {
	t.Helper()
	p.os.mu.Lock()
	f := p.os.procs[pid].handoff
	p.os.mu.Unlock()
	if f == nil {
		t.Fatalf("worker %d got no hand-off channel", pid)
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

// recv reads one message from a worker's end, with the descriptors it
// carried; ok is false when none came within wait.
func recv(t *testing.T, c *net.UnixConn, wait time.Duration) (msg []byte, fds []int, ok bool) {
	t.Helper()
	buf := make([]byte, 8)
	oob := make([]byte, syscall.CmsgSpace(4*handoff.MaxFDs))
	c.SetReadDeadline(time.Now().Add(wait))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, false
	}
	fds = handoff.ParseRights(oob[:oobn])
	t.Cleanup(func() { handoff.CloseAll(fds) })
	return buf[:n], fds, true
}

// noMessage checks that worker's end gets nothing more for a while.
func noMessage(t *testing.T, c *net.UnixConn, who string) {
	t.Helper()
	if msg, fds, ok := recv(t, c, 50*time.Millisecond); ok {
		t.Fatalf("%s got %q with %d connections; want nothing", who, msg, len(fds))
	}
}

// sendConns hands n new connections to magnetd from a worker's end, as
// that worker giving them up; it returns the peers the test keeps.
func sendConns(t *testing.T, c *net.UnixConn, n int) []int {
	t.Helper()
	var give, keep []int
	for range n {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		give, keep = append(give, fds[0]), append(keep, fds[1])
	}
	t.Cleanup(func() { handoff.CloseAll(keep) })
	if _, _, err := c.WriteMsgUnix([]byte{handoff.Conns}, syscall.UnixRights(give...), nil); err != nil {
		t.Fatal(err)
	}
	handoff.CloseAll(give) // the sender's copies: magnetd now holds them
	return keep
}

// wantConns waits for worker's end to receive n connections in one message.
func wantConns(t *testing.T, c *net.UnixConn, n int, who string) []int {
	t.Helper()
	msg, fds, ok := recv(t, c, 5*time.Second)
	if !ok || len(msg) != 1 || msg[0] != handoff.Conns || len(fds) != n {
		t.Fatalf("%s got %q with %d connections (received %v); want %d connections", who, msg, len(fds), ok, n)
	}
	return fds
}

// TestRelayIdleFewest: connections a worker gives go to the idle worker
// holding the fewest, before a busy one holding fewer, and never back to
// the giver; each arrives as a working descriptor.
func TestRelayIdleFewest(t *testing.T) {
	p, ends := handoffPool(t, 3)
	w := p.running()
	p.board.hold(w[0], 6)
	p.board.hold(w[1], 0)
	p.board.hold(w[2], 2)
	p.board.begin(w[1], p.os.Now(), 0, "busy.lua") // busy, not yet stuck
	keep := sendConns(t, ends[w[0]], 2)
	got := wantConns(t, ends[w[2]], 2, "the idle worker")
	noMessage(t, ends[w[1]], "the busy worker")
	noMessage(t, ends[w[0]], "the giver")
	// The descriptors are the connections given.
	if _, err := syscall.Write(keep[0], []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	n0, _ := syscall.Read(got[0], b)
	if n0 != 1 || b[0] != 'x' {
		t.Fatalf("the relayed connection read %d bytes %q; want the peer's x", n0, b[:max(n0, 0)])
	}
}

// TestRelayNotToStuck: a worker inside one request for HandoffAfter is
// given no connection while another can take it, even holding the fewest.
func TestRelayNotToStuck(t *testing.T) {
	p, ends := handoffPool(t, 3)
	w := p.running()
	p.board.hold(w[0], 4)
	p.board.hold(w[1], 1)
	p.board.hold(w[2], 5)
	p.board.begin(w[1], p.os.Now().Add(-time.Second), 0, "slow.lua")
	p.board.begin(w[2], p.os.Now(), 0, "fast.lua")
	sendConns(t, ends[w[0]], 1)
	wantConns(t, ends[w[2]], 1, "the busy worker")
	noMessage(t, ends[w[1]], "the stuck worker")
}

// TestReleaseStuck: a worker inside one request for HandoffAfter while
// another worker is free is asked to release its connections, and asked
// again while it stays stuck; with no free worker it is not asked.
func TestReleaseStuck(t *testing.T) {
	p, ends := handoffPool(t, 2)
	w := p.running()
	p.board.hold(w[0], 3)
	p.board.hold(w[1], 3)
	p.board.begin(w[0], p.os.Now(), 0, "slow.lua")
	p.advance(5 * time.Millisecond)
	noMessage(t, ends[w[0]], "a worker busy for less than HandoffAfter")
	p.advance(10 * time.Millisecond)
	if msg, _, ok := recv(t, ends[w[0]], 5*time.Second); !ok || msg[0] != handoff.Release {
		t.Fatalf("the stuck worker got %q (%v); want a release", msg, ok)
	}
	p.advance(20 * time.Millisecond)
	if msg, _, ok := recv(t, ends[w[0]], 5*time.Second); !ok || msg[0] != handoff.Release {
		t.Fatalf("the worker still stuck got %q (%v); want the release again", msg, ok)
	}
	noMessage(t, ends[w[1]], "the free worker")

	p.board.begin(w[1], p.os.Now().Add(-time.Second), 0, "slow.lua")
	for range 3 {
		recv(t, ends[w[0]], 10*time.Millisecond) // a release already sent
	}
	p.advance(50 * time.Millisecond)
	noMessage(t, ends[w[0]], "a stuck worker with every other worker stuck too")
}

// TestBalance: the worker holding more than its share is asked to give the
// excess; a stuck worker is left out of the shares.
func TestBalance(t *testing.T) {
	p, ends := handoffPool(t, 3)
	w := p.running()
	p.board.hold(w[0], 10)
	p.board.hold(w[1], 2)
	p.board.hold(w[2], 0)
	p.advance(10 * time.Millisecond)
	msg, _, ok := recv(t, ends[w[0]], 5*time.Second)
	if !ok || len(msg) != 2 || msg[0] != handoff.Balance || msg[1] != 6 {
		t.Fatalf("the fullest worker got %q (%v); want a balance of 6 (12 over 3)", msg, ok)
	}
	noMessage(t, ends[w[1]], "a worker under its share")

	// w[0] stuck: its connections are leaving; among w[1] and w[2] the
	// balance moves one.
	p.board.hold(w[1], 3)
	p.board.hold(w[2], 1)
	p.board.begin(w[0], p.os.Now().Add(-time.Second), 0, "slow.lua")
	p.advance(balanceQuiet + 10*time.Millisecond)
	msg, _, ok = recv(t, ends[w[1]], 5*time.Second)
	if !ok || len(msg) != 2 || msg[0] != handoff.Balance || msg[1] != 1 {
		t.Fatalf("the fuller free worker got %q (%v); want a balance of 1", msg, ok)
	}
}

// TestLeavingHeldForNext: a lone worker that leaves is acknowledged, its
// connections are held while no worker can take them, and go to its
// successor once that starts; the acknowledgement says "a full stop" only
// when magnetd stops.
func TestLeavingHeldForNext(t *testing.T) {
	p, ends := handoffPool(t, 1)
	old := p.running()[0]
	if _, _, err := ends[old].WriteMsgUnix([]byte{handoff.Leaving}, nil, nil); err != nil {
		t.Fatal(err)
	}
	msg, _, ok := recv(t, ends[old], 5*time.Second)
	if !ok || len(msg) != 2 || msg[0] != handoff.Ack || msg[1] != 0 {
		t.Fatalf("the leaving worker got %q (%v); want an acknowledgement, not a full stop", msg, ok)
	}
	sendConns(t, ends[old], 3)
	noMessage(t, ends[old], "the leaving worker")
	p.sync()
	p.exit(old, 0)
	p.advance(2 * time.Second) // past any back-off
	next := p.last()
	if next == old {
		t.Fatal("no worker replaced the one that left")
	}
	end := workerEnd(t, p, next)
	noMessage(t, end, "a successor not yet serving")
	ready(t, p, next, end)
	wantConns(t, end, 3, "the successor")

	// In a full stop the acknowledgement says so.
	p.signal(syscall.SIGTERM)
	end.WriteMsgUnix([]byte{handoff.Leaving}, nil, nil)
	msg, _, ok = recv(t, end, 5*time.Second)
	if !ok || len(msg) != 2 || msg[0] != handoff.Ack || msg[1] != 1 {
		t.Fatalf("a worker leaving in a full stop got %q (%v); want the full-stop acknowledgement", msg, ok)
	}
}
