package supervisor

import (
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestWatchdogKills: a worker whose request runs past RequestTimeout is
// killed once, with its process group, and logged with its pid, script,
// URI and duration; the others are left alone. Having served requests, it
// is restarted at once.
func TestWatchdogKills(t *testing.T) {
	p := startPool(t, 2, func(c *Config, _ *fakeOS) { c.RequestTimeout = 5 * time.Second })
	stuck, fine := p.running()[0], p.running()[1]
	p.board.attach(3, stuck, fine)
	p.board.begin(stuck, p.os.Now(), 0, "/srv/stuck.lua")
	p.board.begin(fine, p.os.Now().Add(time.Second), 0, "/srv/fine.lua")
	p.advance(5 * time.Second)
	if k := p.kills(); len(k) != 0 {
		t.Fatalf("killed %v at the limit, before passing it", k)
	}
	p.advance(watchdogTick)
	if k := p.kills(); !slices.Equal(k, []kill{{-stuck, syscall.SIGKILL}}) {
		t.Fatalf("kills %v, want SIGKILL to process group %d", k, stuck)
	}
	if p.logged("request terminate timeout: killing worker", "pid="+itoa(stuck), "script=/srv/stuck.lua", "uri=/uri//srv/stuck.lua", "duration=5.25s") != 1 {
		t.Errorf("kill not logged with pid, script, URI and duration")
	}
	if got := p.board.terminated(); !slices.Equal(got, []int{p.board.slot(stuck)}) {
		t.Errorf("Terminated calls %v, want slot %d once", got, p.board.slot(stuck))
	}
	// The process may take a moment to die: no second kill meanwhile.
	p.board.end(fine)
	p.advance(time.Second)
	if k := p.kills(); len(k) != 0 {
		t.Errorf("killed again: %v", k)
	}
	starts := p.starts()
	p.exit(stuck, -1)
	if p.starts() != starts+1 {
		t.Fatalf("a worker killed by the watchdog after serving requests was not restarted at once")
	}
	if p.logged("worker exited; restarting", "reason=\"request terminate timeout\"") != 1 {
		t.Errorf("restart does not say why the worker died")
	}
	p.advance(time.Minute)
	if k := p.kills(); len(k) != 0 {
		t.Errorf("a worker between requests was killed: %v", k)
	}
}

// TestWatchdogWorkerTimeout: without a pool limit, each worker's own
// announced limit applies; a worker announcing none is never killed. A
// negative RequestTimeout turns the watchdog off.
func TestWatchdogWorkerTimeout(t *testing.T) {
	p := startPool(t, 2, nil)
	limited, unlimited := p.running()[0], p.running()[1]
	p.board.begin(limited, p.os.Now(), 2*time.Second, "/srv/a.lua")
	p.board.begin(unlimited, p.os.Now(), 0, "/srv/b.lua")
	p.advance(2*time.Second + watchdogTick)
	if k := p.kills(); !slices.Equal(k, []kill{{-limited, syscall.SIGKILL}}) {
		t.Fatalf("kills %v, want only %d's group", k, limited)
	}
	p.advance(time.Minute)
	if k := p.kills(); len(k) != 0 {
		t.Errorf("a worker without a limit was killed: %v", k)
	}

	p = startPool(t, 1, func(c *Config, _ *fakeOS) { c.RequestTimeout = -1 })
	p.board.begin(p.last(), p.os.Now(), time.Second, "/srv/a.lua")
	p.advance(time.Minute)
	if k := p.kills(); len(k) != 0 {
		t.Errorf("watchdog off, yet killed %v", k)
	}
}

// TestWatchdogQuickKillBacksOff: a worker killed before it served a request
// and soon after its start (a script that hangs at once, under a short
// limit) restarts after the usual back-off, so that it cannot spin.
func TestWatchdogQuickKillBacksOff(t *testing.T) {
	p := startPool(t, 1, func(c *Config, _ *fakeOS) { c.RequestTimeout = 200 * time.Millisecond })
	for n := 1; n <= 3; n++ {
		pid := p.last()
		p.board.begin(pid, p.os.Now(), 0, "/srv/hang.lua")
		p.advance(2 * watchdogTick)
		if k := p.kills(); !slices.Equal(k, []kill{{-pid, syscall.SIGKILL}}) {
			t.Fatalf("round %d: kills %v", n, k)
		}
		starts := p.starts()
		p.exit(pid, -1)
		d := backoff(n)
		p.advance(d - time.Millisecond)
		if p.starts() != starts {
			t.Fatalf("round %d: restarted before the %v back-off", n, d)
		}
		p.advance(time.Millisecond)
		if p.starts() != starts+1 {
			t.Fatalf("round %d: not restarted after the %v back-off", n, d)
		}
	}
}

// TestWatchdogRetiring: an old worker stuck while draining after a reload
// is killed by the watchdog and not replaced; the new generation serves.
func TestWatchdogRetiring(t *testing.T) {
	p := startPool(t, 1, func(c *Config, _ *fakeOS) { c.RequestTimeout = 3 * time.Second })
	old := p.last()
	p.board.attach(1, old)
	p.board.begin(old, p.os.Now(), 0, "/srv/slow.lua")
	p.signal(syscall.SIGHUP)
	p.board.attach(0, p.last())
	p.advance(time.Second)
	if k := p.kills(); !slices.Equal(k, []kill{{old, syscall.SIGTERM}}) {
		t.Fatalf("kills %v, want SIGTERM to %d", k, old)
	}
	p.advance(2*time.Second + watchdogTick)
	if k := p.kills(); !slices.Equal(k, []kill{{-old, syscall.SIGKILL}}) {
		t.Fatalf("kills %v, want the watchdog's SIGKILL to %d's group", k, old)
	}
	starts := p.starts()
	p.exit(old, -1)
	if p.starts() != starts || len(p.running()) != 1 {
		t.Errorf("a retiring worker killed by the watchdog was replaced")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
