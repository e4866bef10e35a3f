package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/handoff"
	"github.com/magnet-fcgi/magnet/internal/socket"
	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// fakeOS runs the pool without processes or a wall clock: a test starts
// and ends "workers", delivers signals and moves the clock itself.
type fakeOS struct {
	mu      sync.Mutex
	now     time.Time
	nextPID int
	procs   map[int]*fakeProc // every process started, by pid
	order   []int             // pids in the order they started
	kills   []kill            // every Kill, in order
	timers  []*fakeTimer      // pending timers
	fail    error             // when set, Start fails with it
	output  string            // what each worker writes, when set
	sigs    chan os.Signal    // unbuffered: a send returns once Run took it
}

type fakeProc struct {
	pid     int
	spec    *Spec
	exited  func(Exit)
	done    bool
	handoff *os.File // a copy of the worker's end of the hand-off channel
}

type kill struct {
	pid int // negative for a process group
	sig syscall.Signal
}

type fakeTimer struct {
	os      *fakeOS
	when    time.Time
	f       func()
	pending bool
}

func newFakeOS() *fakeOS {
	return &fakeOS{
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		nextPID: 100,
		procs:   map[int]*fakeProc{},
		sigs:    make(chan os.Signal),
	}
}

func (f *fakeOS) Start(spec *Spec, exited func(Exit)) (int, io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, nil, f.fail
	}
	f.nextPID++
	p := &fakeProc{pid: f.nextPID, spec: spec, exited: exited}
	if slices.ContainsFunc(spec.Env, func(e string) bool { return strings.HasPrefix(e, handoff.EnvVar+"=") }) {
		// spawn closes its copy of the worker's end once Start returns.
		fd, err := syscall.Dup(int(spec.ExtraFiles[len(spec.ExtraFiles)-1].Fd()))
		if err != nil {
			return 0, nil, err
		}
		p.handoff = os.NewFile(uintptr(fd), "worker-handoff")
	}
	f.procs[p.pid] = p
	f.order = append(f.order, p.pid)
	if f.output != "" {
		return p.pid, io.NopCloser(strings.NewReader(f.output)), nil
	}
	return p.pid, nil, nil
}

func (f *fakeOS) Kill(pid int, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills = append(f.kills, kill{pid, sig})
	return nil
}

func (f *fakeOS) Notify(...os.Signal) (<-chan os.Signal, func()) { return f.sigs, func() {} }

func (f *fakeOS) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeOS) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{os: f, when: f.now.Add(d), f: fn, pending: true}
	f.timers = append(f.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.os.mu.Lock()
	defer t.os.mu.Unlock()
	was := t.pending
	t.pending = false
	return was
}

// next removes and returns the earliest pending timer due by until, and
// sets the clock to its time; nil when none is due.
func (f *fakeOS) next(until time.Time) *fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timers = slices.DeleteFunc(f.timers, func(t *fakeTimer) bool { return !t.pending })
	var first *fakeTimer
	for _, t := range f.timers {
		if !t.when.After(until) && (first == nil || t.when.Before(first.when)) {
			first = t
		}
	}
	if first == nil {
		f.now = until
		return nil
	}
	first.pending = false
	f.now = first.when
	return first
}

// pool is a Supervisor running on a fakeOS, with what a test checks.
type pool struct {
	t     *testing.T
	os    *fakeOS
	board *fakeBoard
	s     *Supervisor
	log   *testutil.SyncBuffer
	done  chan error
	ended bool
	err   error

	stopping, reopened int
}

// startPool runs a pool of n workers on a fakeOS with a fakeBoard; edit,
// when set, changes the configuration first. It returns once Run is in its
// loop, or has returned.
func startPool(t *testing.T, n int, edit func(*Config, *fakeOS)) *pool {
	t.Helper()
	p := &pool{t: t, os: newFakeOS(), board: newFakeBoard(), log: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cfg := Config{
		Path:         "/fake/worker",
		Workers:      n,
		Socket:       &socket.Socket{Network: "unix", Addr: "/fake.sock"},
		DrainTimeout: 30 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(p.log, nil)),
		Board:        p.board,
		OS:           p.os,
	}
	cfg.Stopping = func() { p.stopping++ }
	cfg.Reopen = func() { p.reopened++ }
	if edit != nil {
		edit(&cfg, p.os)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.s = s
	go func() { p.done <- s.Run() }()
	p.sync()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("supervisor log:\n%s", p.log.String())
		}
	})
	return p
}

// sync returns once Run's loop has handled everything sent to it before.
func (p *pool) sync() {
	p.s.post(func() {})
}

// signal delivers sig to the supervisor.
func (p *pool) signal(sig syscall.Signal) {
	p.t.Helper()
	select {
	case p.os.sigs <- sig:
	case <-p.s.done:
		p.t.Fatalf("signal %v after Run returned", sig)
	}
	p.sync()
}

// exit ends worker pid with status code, or killed by SIGKILL when code
// is -1.
func (p *pool) exit(pid, code int) {
	p.t.Helper()
	p.os.mu.Lock()
	w := p.os.procs[pid]
	if w == nil || w.done {
		p.os.mu.Unlock()
		p.t.Fatalf("no running worker %d", pid)
	}
	w.done = true
	p.os.mu.Unlock()
	e := Exit{Success: code == 0, Status: fmt.Sprintf("exit status %d", code)}
	if code < 0 {
		e.Status = "signal: killed"
	}
	w.exited(e)
	p.sync()
}

// advance moves the clock by d, running each timer due on the way in
// order and letting the supervisor handle it before the next one.
func (p *pool) advance(d time.Duration) {
	until := p.os.Now().Add(d)
	for t := p.os.next(until); t != nil; t = p.os.next(until) {
		t.f()
		p.sync()
	}
}

// running lists the workers started and not yet exited, in start order.
func (p *pool) running() []int {
	p.os.mu.Lock()
	defer p.os.mu.Unlock()
	var out []int
	for _, pid := range p.os.order {
		if !p.os.procs[pid].done {
			out = append(out, pid)
		}
	}
	return out
}

// starts is how many workers were started in all.
func (p *pool) starts() int {
	p.os.mu.Lock()
	defer p.os.mu.Unlock()
	return len(p.os.order)
}

// last is the pid of the latest worker started.
func (p *pool) last() int {
	p.os.mu.Lock()
	defer p.os.mu.Unlock()
	return p.os.order[len(p.os.order)-1]
}

// kills returns and forgets the Kill calls made so far.
func (p *pool) kills() []kill {
	p.os.mu.Lock()
	defer p.os.mu.Unlock()
	k := p.os.kills
	p.os.kills = nil
	return k
}

// returned reports whether Run has returned, and keeps its error.
func (p *pool) returned() bool {
	if p.ended {
		return true
	}
	select {
	case p.err = <-p.done:
		p.ended = true
	case <-p.s.done:
		p.err, p.ended = <-p.done, true
	default:
	}
	return p.ended
}

// logged counts the log lines containing all of subs.
func (p *pool) logged(subs ...string) int {
	n := 0
	for _, line := range strings.Split(p.log.String(), "\n") {
		if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(line, s) }) {
			n++
		}
	}
	return n
}

// fakeBoard is a scoreboard whose served and attached answers a test sets.
type fakeBoard struct {
	mu       sync.Mutex
	served   map[int]uint64
	attached map[int]bool
	slots    map[int]int     // pid to slot, set on Started
	exited   []int           // pids, in order
	requests map[int]Request // current requests by pid
	killed   []int           // slots, in order, of Terminated calls
	holding  map[int]int     // connections held, by slot
}

func newFakeBoard() *fakeBoard {
	return &fakeBoard{served: map[int]uint64{}, attached: map[int]bool{}, slots: map[int]int{}, requests: map[int]Request{}, holding: map[int]int{}}
}

func (b *fakeBoard) Env(slot int) []string { return []string{fmt.Sprintf("SLOT=%d", slot)} }

func (b *fakeBoard) Started(slot, pid int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slots[pid] = slot
	b.served[slot], b.attached[slot] = 0, false
}

func (b *fakeBoard) Served(slot int) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.served[slot]
}

func (b *fakeBoard) Attached(slot int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attached[slot]
}

func (b *fakeBoard) Exited(slot, pid int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.exited = append(b.exited, pid)
}

func (b *fakeBoard) Request(slot, pid int) (Request, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.requests[pid]
	return r, ok && b.slots[pid] == slot
}

func (b *fakeBoard) Terminated(slot int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.killed = append(b.killed, slot)
}

// Holding makes the board a Holder, for the hand-off's balance.
func (b *fakeBoard) Holding(slot int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holding[slot]
}

// hold makes worker pid show n connections held.
func (b *fakeBoard) hold(pid, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding[b.slots[pid]] = n
}

// begin makes worker pid serve a request that started at start, the
// worker announcing timeout as its own limit; end finishes it.
func (b *fakeBoard) begin(pid int, start time.Time, timeout time.Duration, script string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests[pid] = Request{Start: start, Timeout: timeout, Script: script, URI: "/uri/" + script}
}

func (b *fakeBoard) end(pid int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.requests, pid)
}

// terminated returns the slots of the Terminated calls so far.
func (b *fakeBoard) terminated() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.killed)
}

// slot is the slot worker pid started in.
func (b *fakeBoard) slot(pid int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.slots[pid]
}

// attach marks the workers pids as serving, or serving n requests.
func (b *fakeBoard) attach(served uint64, pids ...int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pid := range pids {
		b.attached[b.slots[pid]] = true
		b.served[b.slots[pid]] = served
	}
}

var errNoProgram = errors.New("no such program")
