package supervisor

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/socket"
)

// The pool with real processes: what the fake cannot show.

// chanBoard reports starts and exits on channels.
type chanBoard struct {
	started, exited chan [2]int // slot, pid
}

func newChanBoard() *chanBoard {
	return &chanBoard{started: make(chan [2]int, 100), exited: make(chan [2]int, 100)}
}

func (b *chanBoard) Env(slot int) []string            { return []string{"SLOT=" + string(rune('0'+slot))} }
func (b *chanBoard) Started(slot, pid int)            { b.started <- [2]int{slot, pid} }
func (b *chanBoard) Served(int) uint64                { return 0 }
func (b *chanBoard) Attached(int) bool                { return true }
func (b *chanBoard) Exited(slot, pid int)             { b.exited <- [2]int{slot, pid} }
func (b *chanBoard) Request(int, int) (Request, bool) { return Request{}, false }
func (b *chanBoard) Terminated(int)                   {}

// next waits for the next event on c.
func next(t *testing.T, c chan [2]int, what string) (slot, pid int) {
	t.Helper()
	select {
	case e := <-c:
		return e[0], e[1]
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return 0, 0
	}
}

func listen(tb testing.TB) *socket.Socket {
	tb.Helper()
	sock, err := socket.Listen(socket.ListenConfig{Path: filepath.Join(tb.TempDir(), "s.sock"), Mode: 0o600})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sock.Close() })
	return sock
}

// TestSupervisor runs a pool of sleep processes: it restarts a killed one,
// replaces all of them on Reload, and stops them all on Stop.
func TestSupervisor(t *testing.T) {
	b := newChanBoard()
	s, err := New(Config{
		Path:         "/bin/sleep",
		Argv:         []string{"sleep", "1000"},
		Workers:      3,
		Socket:       listen(t),
		DrainTimeout: 5 * time.Second,
		ReadyDelay:   10 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Board:        b,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	var first []int
	for range 3 {
		slot, pid := next(t, b.started, "the first generation")
		if slot < 0 || slot >= 3 {
			t.Errorf("first generation in slot %d", slot)
		}
		first = append(first, pid)
	}

	syscall.Kill(first[0], syscall.SIGKILL)
	if _, pid := next(t, b.exited, "the killed worker's exit"); pid != first[0] {
		t.Fatalf("worker %d exited, want %d", pid, first[0])
	}
	_, repl := next(t, b.started, "a replacement")
	if now := pids(s.Workers()); len(now) != 3 || slices.Contains(now, first[0]) || !slices.Contains(now, repl) {
		t.Errorf("workers %v after replacing %d by %d", now, first[0], repl)
	}

	s.Reload()
	for range 3 {
		if slot, _ := next(t, b.started, "a new generation"); slot < 3 || slot >= SlotCount(3) {
			t.Errorf("second generation in slot %d, want the other half", slot)
		}
	}
	for range 3 {
		if slot, _ := next(t, b.exited, "the old generation's exit"); slot >= 3 {
			t.Errorf("a new worker in slot %d exited", slot)
		}
	}
	for _, w := range s.Workers() {
		if w.Generation != 1 {
			t.Errorf("worker %+v left after the reload", w)
		}
	}

	s.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
	if n := len(s.Workers()); n != 0 {
		t.Errorf("%d workers left after Stop", n)
	}
}

func pids(ws []WorkerInfo) []int {
	var out []int
	for _, w := range ws {
		out = append(out, w.PID)
	}
	slices.Sort(out)
	return out
}

// TestSupervisorCrash: a real exit status reaches the log, and a program
// that crashes at once is restarted after a back-off.
func TestSupervisorCrash(t *testing.T) {
	b := newChanBoard()
	s, err := New(Config{Path: "/bin/false", Workers: 1, Socket: listen(t), Board: b,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	next(t, b.started, "a start")
	next(t, b.exited, "the crash")
	next(t, b.started, "a restart after the back-off")
	s.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSupervisorBadProgram(t *testing.T) {
	s, err := New(Config{Path: "/nonexistent/worker", Workers: 2, Socket: listen(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(); err == nil {
		t.Fatal("Run with a missing program succeeded")
	}
}
