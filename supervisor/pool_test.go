package supervisor

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// The pool's logic, run on a fakeOS: no process, no sleep, no wall clock.

// TestRestartBackoffResets: a worker that lived long restarts at once; one
// that dies soon after its start restarts after a back-off, which a long
// life resets.
func TestRestartBackoffResets(t *testing.T) {
	p := startPool(t, 2, nil)
	if got := p.running(); len(got) != 2 {
		t.Fatalf("running %v, want 2 workers", got)
	}
	for _, pid := range p.running() {
		if s := p.board.slot(pid); s < 0 || s > 1 {
			t.Errorf("first generation worker %d in slot %d", pid, s)
		}
	}
	p.advance(quickExit)
	first := p.running()[0]
	p.exit(first, 1)
	if n := p.starts(); n != 3 {
		t.Fatalf("%d starts after a crash past quickExit, want an immediate restart", n)
	}
	if p.logged("worker exited; restarting", "exit status 1") != 1 {
		t.Errorf("crash not logged")
	}

	// Quick exits back off 100 ms, then 200 ms.
	for _, d := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		starts := p.starts()
		p.exit(p.last(), 1)
		p.advance(d - time.Millisecond)
		if p.starts() != starts {
			t.Fatalf("restarted before the %v back-off", d)
		}
		p.advance(time.Millisecond)
		if p.starts() != starts+1 {
			t.Fatalf("not restarted after the %v back-off", d)
		}
	}
	// A life past quickExit resets the count: the next quick exit backs
	// off 100 ms again.
	p.advance(quickExit)
	p.exit(p.last(), 1)
	if p.starts() != 6 {
		t.Fatalf("%d starts, want an immediate restart after a long life", p.starts())
	}
	p.exit(p.last(), 1)
	p.advance(100 * time.Millisecond)
	if p.starts() != 7 {
		t.Errorf("%d starts; the back-off was not reset to 100ms", p.starts())
	}
	if p.logged("worker exited soon after start", "backoff=100ms") != 2 || p.logged("backoff=200ms") != 1 {
		t.Errorf("back-offs not logged as 100ms, 200ms, 100ms")
	}
	if p.returned() {
		t.Fatalf("Run returned: %v", p.err)
	}
}

// TestCrashLoopBackoff: a worker that keeps dying at once is restarted
// after a delay that doubles up to backoffMax.
func TestCrashLoopBackoff(t *testing.T) {
	p := startPool(t, 1, nil)
	for n := 1; n <= 10; n++ {
		d := backoff(n)
		starts := p.starts()
		p.exit(p.last(), 1)
		p.advance(d - time.Millisecond)
		if p.starts() != starts {
			t.Fatalf("failure %d: restarted before the %v back-off", n, d)
		}
		p.advance(time.Millisecond)
		if p.starts() != starts+1 {
			t.Fatalf("failure %d: not restarted after the %v back-off", n, d)
		}
	}
	if p.logged("backoff=10s") != 3 {
		t.Errorf("want three back-offs at the cap")
	}
}

// TestRecycle: a worker that exits 0 soon after its start, having served
// requests, was recycled (PHP_FCGI_MAX_REQUESTS) and restarts at once; a
// quick clean exit without requests, or a crash after requests, backs off.
func TestRecycle(t *testing.T) {
	p := startPool(t, 1, nil)
	p.board.attach(5, p.last())
	p.exit(p.last(), 0)
	if p.starts() != 2 {
		t.Fatalf("a recycled worker was not restarted at once")
	}
	if p.logged("worker exited; restarting", "exit status 0") != 1 {
		t.Errorf("recycle not logged")
	}
	for _, c := range []struct {
		served uint64
		code   int
	}{{0, 0}, {5, 1}} {
		starts := p.starts()
		p.board.attach(c.served, p.last())
		p.exit(p.last(), c.code)
		if p.starts() != starts {
			t.Errorf("quick exit %d after %d requests restarted without back-off", c.code, c.served)
		}
		p.advance(backoffMax / 10)
		if p.starts() != starts+1 {
			t.Fatalf("not restarted after the back-off")
		}
	}
}

// TestReload: SIGHUP starts a new generation in the other half of the
// slots; the old one is told to stop once every new worker has run
// ReadyDelay and attached, then killed after DrainTimeout.
func TestReload(t *testing.T) {
	p := startPool(t, 2, nil)
	old := p.running()
	p.signal(syscall.SIGHUP)
	now := p.running()
	fresh := now[2:]
	if len(now) != 4 {
		t.Fatalf("after SIGHUP running %v, want 2 old and 2 new", now)
	}
	for _, pid := range fresh {
		if s := p.board.slot(pid); s != 2 && s != 3 {
			t.Errorf("new worker %d in slot %d, want the other half", pid, s)
		}
	}
	p.advance(time.Second)
	if k := p.kills(); len(k) != 0 {
		t.Fatalf("old workers signalled before the new ones attached: %v", k)
	}
	p.board.attach(0, fresh[0])
	p.advance(time.Second)
	if k := p.kills(); len(k) != 0 {
		t.Fatalf("old workers signalled before every new one attached: %v", k)
	}
	p.board.attach(0, fresh[1])
	p.advance(readyPoll)
	want := []kill{{old[0], syscall.SIGTERM}, {old[1], syscall.SIGTERM}}
	if k := p.kills(); !sameKills(k, want) {
		t.Fatalf("kills %v, want %v", k, want)
	}
	for _, w := range p.s.Workers() {
		if w.Retiring != slices.Contains(old, w.PID) || w.Generation != 0 && w.Generation != 1 {
			t.Errorf("worker %+v", w)
		}
	}

	// An old worker that finishes is not replaced; one that does not is
	// killed, with its process group, after DrainTimeout.
	p.exit(old[0], 0)
	if p.starts() != 4 {
		t.Errorf("a retired worker was replaced")
	}
	p.advance(30*time.Second - time.Millisecond)
	if k := p.kills(); len(k) != 0 {
		t.Fatalf("killed before the drain timeout: %v", k)
	}
	p.advance(time.Millisecond)
	if k := p.kills(); !sameKills(k, []kill{{-old[1], syscall.SIGKILL}}) {
		t.Fatalf("kills %v after the drain timeout, want SIGKILL to group %d only", k, old[1])
	}
	if p.logged("killing worker", "drain timeout") != 1 {
		t.Errorf("drain kill not logged")
	}
	p.exit(old[1], -1)

	// The next generation goes back to the first half.
	p.signal(syscall.SIGHUP)
	for _, pid := range p.running()[2:] {
		if s := p.board.slot(pid); s != 0 && s != 1 {
			t.Errorf("third generation worker %d in slot %d, want the first half", pid, s)
		}
	}
}

// TestReloadReadyDelay: without a board, a new generation is ready once
// each worker has run ReadyDelay.
func TestReloadReadyDelay(t *testing.T) {
	p := startPool(t, 1, func(c *Config, _ *fakeOS) { c.Board, c.ReadyDelay = nil, 500*time.Millisecond })
	old := p.last()
	p.s.Reload()
	p.sync()
	p.advance(500*time.Millisecond - time.Millisecond)
	if k := p.kills(); len(k) != 0 {
		t.Fatalf("old worker signalled before ReadyDelay: %v", k)
	}
	p.advance(time.Millisecond)
	if k := p.kills(); !sameKills(k, []kill{{old, syscall.SIGTERM}}) {
		t.Fatalf("kills %v, want SIGTERM to %d", k, old)
	}
}

// TestReloadTimeout: a new generation that never attaches replaces the old
// one after readyTimeout; one that does not run at all leaves the old one
// serving.
func TestReloadTimeout(t *testing.T) {
	p := startPool(t, 1, nil)
	old := p.last()
	p.signal(syscall.SIGHUP)
	p.advance(readyTimeout)
	if k := p.kills(); len(k) != 0 {
		t.Fatalf("old worker signalled at the timeout: %v", k)
	}
	p.advance(readyPoll)
	if k := p.kills(); !sameKills(k, []kill{{old, syscall.SIGTERM}}) {
		t.Fatalf("kills %v, want SIGTERM to %d past the timeout", k, old)
	}
	p.exit(old, 0)

	// A broken new program: the old worker keeps serving.
	old = p.last()
	p.os.mu.Lock()
	p.os.fail = errNoProgram
	p.os.mu.Unlock()
	p.signal(syscall.SIGHUP)
	p.advance(time.Minute)
	if k := p.kills(); len(k) != 0 {
		t.Fatalf("old worker signalled while no new one runs: %v", k)
	}
	if p.logged("no new worker is running") != 1 || p.logged("starting worker failed", "no such program") < 5 {
		t.Errorf("a broken reload not logged once, or not retried")
	}
	// Once it starts, the old one goes at once: readyTimeout has passed.
	p.os.mu.Lock()
	p.os.fail = nil
	p.os.mu.Unlock()
	p.advance(backoffMax)
	if k := p.kills(); !sameKills(k, []kill{{old, syscall.SIGTERM}}) {
		t.Fatalf("kills %v, want SIGTERM to %d once the program works", k, old)
	}
}

// TestStop: SIGTERM tells every worker to stop, restarts none, kills what
// is left after DrainTimeout, and Run returns once all have exited.
func TestStop(t *testing.T) {
	p := startPool(t, 3, nil)
	ws := p.running()
	p.exit(ws[0], 1) // a crashed worker waits for its back-off
	ws = ws[1:]
	p.signal(syscall.SIGTERM)
	if p.stopping != 1 {
		t.Errorf("Stopping called %d times", p.stopping)
	}
	want := []kill{{ws[0], syscall.SIGTERM}, {ws[1], syscall.SIGTERM}}
	if k := p.kills(); !sameKills(k, want) {
		t.Fatalf("kills %v, want %v", k, want)
	}
	p.advance(backoffBase)
	if p.starts() != 3 {
		t.Errorf("a worker was restarted during the stop")
	}
	p.exit(ws[0], 0)
	p.signal(syscall.SIGHUP) // too late to reload
	if p.starts() != 3 || p.stopping != 1 {
		t.Errorf("SIGHUP during a stop started workers or stopped again")
	}
	p.advance(30 * time.Second)
	if k := p.kills(); !sameKills(k, []kill{{-ws[1], syscall.SIGKILL}}) {
		t.Fatalf("kills %v after the drain timeout, want SIGKILL to group %d", k, ws[1])
	}
	if p.returned() {
		t.Fatal("Run returned with a worker left")
	}
	p.exit(ws[1], -1)
	if !p.returned() || p.err != nil {
		t.Fatalf("Run: returned %v, err %v", p.ended, p.err)
	}
	if n := len(p.s.Workers()); n != 0 {
		t.Errorf("%d workers listed after the stop", n)
	}
}

// TestSecondSignal: a second SIGTERM or SIGINT kills the workers at once,
// but not one that comes with the first (a signal sent to a process group)
// nor a second SIGQUIT.
func TestSecondSignal(t *testing.T) {
	p := startPool(t, 1, nil)
	pid := p.last()
	p.signal(syscall.SIGQUIT)
	p.signal(syscall.SIGTERM)
	p.advance(secondSignalGap)
	p.signal(syscall.SIGQUIT)
	if k := p.kills(); !sameKills(k, []kill{{pid, syscall.SIGTERM}}) {
		t.Fatalf("kills %v, want one SIGTERM", k)
	}
	p.advance(time.Millisecond)
	p.signal(syscall.SIGINT)
	if k := p.kills(); !sameKills(k, []kill{{-pid, syscall.SIGKILL}}) {
		t.Fatalf("kills %v, want SIGKILL to group %d", k, pid)
	}
	if p.logged("second stop signal") != 1 {
		t.Errorf("second signal kill not logged")
	}
	p.exit(pid, -1)
	if !p.returned() || p.err != nil {
		t.Fatalf("Run: returned %v, err %v", p.ended, p.err)
	}
}

// TestStopMethod: Stop stops as SIGTERM does.
func TestStopMethod(t *testing.T) {
	p := startPool(t, 1, nil)
	p.s.Stop()
	p.sync()
	if k := p.kills(); !sameKills(k, []kill{{p.last(), syscall.SIGTERM}}) || p.stopping != 1 {
		t.Fatalf("kills %v, stopping %d", k, p.stopping)
	}
	p.exit(p.last(), 0)
	if !p.returned() || p.err != nil {
		t.Fatalf("Run: returned %v, err %v", p.ended, p.err)
	}
}

// TestReopen: SIGUSR1 calls Reopen and nothing else.
func TestReopen(t *testing.T) {
	p := startPool(t, 2, nil)
	p.signal(syscall.SIGUSR1)
	p.signal(syscall.SIGUSR1)
	if p.reopened != 2 || p.logged("log files reopened") != 2 {
		t.Errorf("Reopen called %d times", p.reopened)
	}
	if k := p.kills(); len(k) != 0 || p.starts() != 2 {
		t.Errorf("SIGUSR1 signalled %v or started workers", k)
	}
}

// TestFirstGenerationFails: Run returns an error when no worker of the
// first generation starts, and leaves no restart pending; one that starts
// is enough to run.
func TestFirstGenerationFails(t *testing.T) {
	p := startPool(t, 2, func(_ *Config, f *fakeOS) { f.fail = errNoProgram })
	if !p.returned() || p.err == nil {
		t.Fatalf("Run: returned %v, err %v; want an error", p.ended, p.err)
	}
	p.os.mu.Lock()
	pending := slices.ContainsFunc(p.os.timers, func(t *fakeTimer) bool { return t.pending })
	p.os.mu.Unlock()
	if pending {
		t.Errorf("a restart is still pending after Run returned")
	}

	// One of two starts: Run goes on and retries the other.
	p = startPool(t, 2, func(c *Config, f *fakeOS) { c.Board = failSecond{c.Board.(*fakeBoard), f} })
	if p.returned() {
		t.Fatalf("Run returned %v with one worker running", p.err)
	}
	p.os.mu.Lock()
	p.os.fail = nil
	p.os.mu.Unlock()
	p.advance(backoffBase)
	if n := len(p.running()); n != 2 {
		t.Errorf("%d workers after the retry, want 2", n)
	}
}

// failSecond makes Starts fail once a first worker started.
type failSecond struct {
	*fakeBoard
	os *fakeOS
}

func (b failSecond) Started(slot, pid int) {
	b.fakeBoard.Started(slot, pid)
	b.os.mu.Lock()
	b.os.fail = errNoProgram
	b.os.mu.Unlock()
}

func sameKills(got, want []kill) bool {
	key := func(a, b kill) int { return a.pid - b.pid }
	return slices.Equal(slices.SortedFunc(slices.Values(got), key), slices.SortedFunc(slices.Values(want), key))
}
