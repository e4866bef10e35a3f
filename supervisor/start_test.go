package supervisor

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// startCheck runs a pool of n workers that must get ready within 5 s,
// counting Ready calls.
func startCheck(t *testing.T, n int, output string) (*pool, *int) {
	t.Helper()
	readies := new(int)
	p := startPool(t, n, func(c *Config, f *fakeOS) {
		c.StartTimeout = 5 * time.Second
		c.Ready = func() { *readies++ }
		f.output = output
	})
	return p, readies
}

// TestStartReady: with StartTimeout, Ready waits until every worker has run
// ReadyDelay and attached to the board.
func TestStartReady(t *testing.T) {
	p, readies := startCheck(t, 2, "")
	p.advance(time.Second)
	if *readies != 0 {
		t.Fatalf("Ready called before any worker attached")
	}
	w := p.running()
	p.board.attach(0, w[0])
	p.advance(100 * time.Millisecond)
	if *readies != 0 {
		t.Fatalf("Ready called with one of two workers attached")
	}
	p.board.attach(0, w[1])
	p.advance(100 * time.Millisecond)
	if *readies != 1 {
		t.Fatalf("Ready called %d times once both workers attached, want 1", *readies)
	}
	p.advance(10 * time.Second)
	if *readies != 1 || p.returned() {
		t.Errorf("after the start timeout: Ready called %d times, Run returned %v (%v)", *readies, p.ended, p.err)
	}
}

// TestStartReadyDelay: a worker that attached at once is ready only after
// it has run ReadyDelay; one that exits before is not.
func TestStartReadyDelay(t *testing.T) {
	p, readies := startCheck(t, 1, "")
	p.board.attach(0, p.last())
	p.exit(p.last(), 1)
	p.advance(backoffBase)
	p.board.attach(0, p.last())
	p.advance(300*time.Millisecond - readyPoll)
	if *readies != 0 {
		t.Fatalf("Ready before the worker ran ReadyDelay")
	}
	p.advance(2 * readyPoll)
	if *readies != 1 {
		t.Fatalf("Ready called %d times, want 1", *readies)
	}
}

// TestStartSome: at StartTimeout one ready worker of two is enough; the
// other keeps being restarted.
func TestStartSome(t *testing.T) {
	p, readies := startCheck(t, 2, "")
	w := p.running()
	p.board.attach(0, w[0])
	p.advance(4 * time.Second)
	if *readies != 0 {
		t.Fatalf("Ready with one of two workers before the start timeout")
	}
	p.advance(time.Second)
	if *readies != 1 || p.returned() {
		t.Fatalf("at the start timeout: Ready called %d times, Run returned %v (%v)", *readies, p.ended, p.err)
	}
	if p.logged("not every worker got ready", "ready=1") != 1 {
		t.Errorf("the partial start was not logged")
	}
}

// TestStartFails: a first generation that crash-loops never gets ready: at
// StartTimeout Run stops the pool and returns the worker's last words and
// exit status, without calling Ready.
func TestStartFails(t *testing.T) {
	const words = `magnet-worker: docroot "/nonexist": lstat /nonexist: no such file or directory`
	p, readies := startCheck(t, 2, words+"\n")
	// The output is read by goroutines; wait for it to be logged.
	deadline := time.Now().Add(30 * time.Second)
	for p.logged("docroot") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("worker output not logged")
		}
		time.Sleep(time.Millisecond)
	}
	for p.os.Now().Sub(p.s.StartTime()) < 5*time.Second && !p.returned() {
		for _, pid := range p.running() {
			p.exit(pid, 1)
		}
		p.advance(50 * time.Millisecond)
	}
	if !p.returned() {
		t.Fatalf("Run still running after the start timeout")
	}
	if *readies != 0 {
		t.Errorf("Ready called for a start that failed")
	}
	if p.err == nil || !strings.Contains(p.err.Error(), words) || !strings.Contains(p.err.Error(), "exit status 1") ||
		!strings.Contains(p.err.Error(), "within 5s") {
		t.Errorf("Run's error %v; want the worker's words and exit status", p.err)
	}
	if p.stopping != 1 {
		t.Errorf("Stopping called %d times, want 1", p.stopping)
	}
	starts := p.starts()
	until := p.os.Now().Add(20 * time.Second)
	for tm := p.os.next(until); tm != nil; tm = p.os.next(until) {
		tm.f()
	}
	if p.starts() != starts {
		t.Errorf("a worker was restarted after Run returned")
	}
}

// TestStartFailsHung: workers that run but never attach are stopped at
// StartTimeout, and Run returns once they have exited.
func TestStartFailsHung(t *testing.T) {
	p, readies := startCheck(t, 2, "")
	p.advance(5 * time.Second)
	if p.returned() {
		t.Fatalf("Run returned before the workers exited")
	}
	var want []kill
	for _, pid := range p.running() {
		want = append(want, kill{pid, syscall.SIGTERM})
	}
	if k := p.kills(); !sameKills(k, want) {
		t.Errorf("kills %v, want %v", k, want)
	}
	for _, pid := range p.running() {
		p.exit(pid, 0)
	}
	if !p.returned() || p.err == nil || *readies != 0 {
		t.Errorf("Run returned %v with %v, Ready called %d times; want an error and no Ready", p.ended, p.err, *readies)
	}
}

// TestStartRecycledBeforeReady: workers recycled (exit 0 after serving)
// faster than ReadyDelay have proved the pool serves: the start succeeds.
func TestStartRecycledBeforeReady(t *testing.T) {
	p, readies := startCheck(t, 1, "")
	for range 20 {
		p.board.attach(5, p.last())
		p.advance(100 * time.Millisecond)
		p.exit(p.last(), 0)
		p.advance(readyPoll)
	}
	if *readies != 1 || p.returned() {
		t.Fatalf("Ready called %d times, Run returned %v (%v)", *readies, p.ended, p.err)
	}
}
