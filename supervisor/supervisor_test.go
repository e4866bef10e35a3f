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

func pids(ws []WorkerInfo) []int {
	var out []int
	for _, w := range ws {
		out = append(out, w.PID)
	}
	slices.Sort(out)
	return out
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSupervisor runs a pool of sleep processes: it restarts a killed one,
// replaces all of them on Reload, and stops them all on Stop.
func TestSupervisor(t *testing.T) {
	sock, err := socket.Listen(socket.ListenConfig{Path: filepath.Join(t.TempDir(), "s.sock"), Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	started := make(chan int, 100)
	s, err := New(Config{
		Path:         "/bin/sleep",
		Argv:         []string{"sleep", "1000"},
		Workers:      3,
		Socket:       sock,
		DrainTimeout: 5 * time.Second,
		ReadyDelay:   10 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		SlotEnv:      func(slot int) []string { return []string{"SLOT=" + string(rune('0'+slot))} },
		Started:      func(slot, pid int) { started <- slot },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	waitFor(t, "3 workers", func() bool { return len(s.Workers()) == 3 })
	first := pids(s.Workers())
	for range 3 {
		if slot := <-started; slot < 0 || slot >= 3 {
			t.Errorf("first generation in slot %d", slot)
		}
	}

	syscall.Kill(first[0], syscall.SIGKILL)
	waitFor(t, "a replacement", func() bool {
		now := pids(s.Workers())
		return len(now) == 3 && !slices.Contains(now, first[0])
	})
	<-started

	s.Reload()
	waitFor(t, "a new generation", func() bool {
		now := s.Workers()
		if len(now) != 3 {
			return false
		}
		for _, w := range now {
			if w.Generation != 1 {
				return false
			}
		}
		return true
	})
	for range 3 {
		if slot := <-started; slot < 3 || slot >= SlotCount(3) {
			t.Errorf("second generation in slot %d, want the other half", slot)
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

func TestSupervisorBadProgram(t *testing.T) {
	sock, err := socket.Listen(socket.ListenConfig{Path: filepath.Join(t.TempDir(), "s.sock"), Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	s, err := New(Config{Path: "/nonexistent/worker", Workers: 2, Socket: sock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(); err == nil {
		t.Fatal("Run with a missing program succeeded")
	}
}
