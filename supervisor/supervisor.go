package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/magnet-fcgi/magnet/internal/socket"
)

// Config describes a pool of worker processes.
type Config struct {
	// Path is the worker program; Argv is its full argument list,
	// Argv[0] included. With Chroot, Path is resolved inside the chroot.
	Path string
	Argv []string
	// Env is each worker's environment.
	Env []string
	// Dir is the workers' working directory (inside Chroot when set).
	Dir string
	// Chroot, when set, is the directory workers are chrooted to.
	Chroot string
	// Credential, when set, is the user and groups workers run as.
	Credential *syscall.Credential
	// Workers is the number of worker processes (at least 1).
	Workers int
	// DrainTimeout is how long old workers may finish their requests after
	// SIGTERM, on reload and on stop, before they are killed.
	DrainTimeout time.Duration
	// ReadyDelay is how long each worker of a new generation must have run
	// on reload before the old generation is told to stop; 300 ms when
	// zero.
	ReadyDelay time.Duration
	// Socket is the listening socket, handed to each worker as fd 0.
	Socket *socket.Socket
	// Logger receives the supervisor's events and the workers' output.
	Logger *slog.Logger

	// ExtraFiles are passed to every worker from fd 3 on (the scoreboard).
	ExtraFiles []*os.File
	// Board, when set, is the scoreboard the workers report on.
	Board Board
	// Stopping, when set, is called once when a stop begins, before the
	// workers are told to exit.
	Stopping func()
	// StopSignal is what tells the workers to exit on a stop, when no
	// other worker will take over their connections (default SIGTERM,
	// which also retires old workers on reload). magnet-worker drains on
	// SIGUSR2 until the web server closes its connections.
	StopSignal syscall.Signal
	// Ready, when set, is called once the first generation has started,
	// or, with StartTimeout, once it is ready.
	Ready func()
	// StartTimeout, when positive, is how long the first generation may
	// take to get ready: a worker is ready once it has run ReadyDelay and
	// attached to the Board. Ready is called when every worker is ready,
	// or at StartTimeout when one is; when none is by then (a worker that
	// crashes at start, say on a bad option), Run stops the pool and
	// returns an error with the last line a worker wrote. Zero calls Ready
	// as soon as the first generation was started.
	StartTimeout time.Duration
	// Reopen, when set, is called on SIGUSR1 to reopen log files.
	Reopen func()
	// RequestTimeout is how long a worker's current request may run, by
	// the board's request start, before the worker is killed (PHP-FPM's
	// request_terminate_timeout). 0 takes the limit each worker announces
	// on the board (Request.Timeout); a negative value kills none. It needs
	// a Board.
	RequestTimeout time.Duration

	// Handoff gives each worker a channel to the master over which idle
	// connections move between workers (handoff.go): a stopping worker
	// hands its connections to the live ones instead of closing them.
	Handoff bool
	// HandoffAfter, with Handoff and a Board, is how long a worker may be
	// inside one request before it is asked to hand its idle connections
	// to idle workers; 0: never.
	HandoffAfter time.Duration

	// OS starts and signals the workers and keeps the time; nil is the
	// real operating system.
	OS OS
}

// Board is the pool's view of the scoreboard: one slot per worker, from 0
// to SlotCount(Workers)-1.
type Board interface {
	// Env is the extra environment of the worker in a slot.
	Env(slot int) []string
	// Started is called when a worker starts in a slot.
	Started(slot, pid int)
	// Served is how many requests the worker in a slot has served; a
	// worker that exits 0 quickly after serving requests (a
	// PHP_FCGI_MAX_REQUESTS recycle) then restarts without back-off.
	Served(slot int) uint64
	// Attached reports whether the worker in a slot has begun serving. On
	// reload the old generation is retired only once every new worker
	// has, or after 10 s.
	Attached(slot int) bool
	// Exited is called when the worker that ran in a slot has exited and
	// was reaped.
	Exited(slot, pid int)
	// Request reports the current request of worker pid in a slot; ok is
	// false between requests, or when the slot holds another worker.
	Request(slot, pid int) (r Request, ok bool)
	// Terminated counts a worker killed by the request terminate timeout.
	Terminated(slot int)
}

// SlotCount is the number of scoreboard slots a pool of n workers uses:
// successive generations alternate between two halves, so the workers of a
// new generation never share a slot with the old ones they replace.
func SlotCount(n int) int { return 2 * n }

// WorkerInfo describes one running worker process.
type WorkerInfo struct {
	PID int
	// Slot is the worker's scoreboard slot.
	Slot int
	// Generation counts reloads; old generations are draining.
	Generation int
	Started    time.Time
	// Retiring is true once the worker was told to finish and exit.
	Retiring bool
}

type proc struct {
	pid      int
	index    int // position in the pool, 0..Workers-1
	slot     int // scoreboard slot
	gen      int
	started  time.Time
	retiring bool
	killed   bool // by the watchdog
	ho       procHandoff
}

type poolSlot struct {
	pid   int // current worker, 0 when none
	fails int // quick exits in a row
	timer Timer
	seq   int // invalidates a fired but not yet run restart timer
}

type exitEvent struct {
	p    *proc
	exit Exit
}

// Supervisor runs the worker pool. Create it with New and call Run.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	os     OS
	events chan func()
	exited chan exitEvent
	done   chan struct{}

	mu    sync.Mutex // guards procs for Workers
	procs map[int]*proc

	pool     []poolSlot
	hand     handoffState
	gen      int
	stopping bool
	stopAt   time.Time
	start    time.Time
	started  bool  // the first generation got ready (or no check was asked)
	served   bool  // some worker has served a request
	startErr error // why the first generation never got ready

	outMu    sync.Mutex
	lastLine string // the last line a worker wrote, for startErr
	lastExit string // how the last worker of the first generation ended
}

// New checks cfg and returns a supervisor ready to Run.
func New(cfg Config) (*Supervisor, error) {
	switch {
	case cfg.Workers < 1:
		return nil, errors.New("supervisor: need at least one worker")
	case cfg.Socket == nil:
		return nil, errors.New("supervisor: no listen socket")
	case cfg.Path == "":
		return nil, errors.New("supervisor: no worker program")
	}
	if len(cfg.Argv) == 0 {
		cfg.Argv = []string{cfg.Path}
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.ReadyDelay <= 0 {
		cfg.ReadyDelay = 300 * time.Millisecond
	}
	if cfg.StopSignal == 0 {
		cfg.StopSignal = syscall.SIGTERM
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OS == nil {
		cfg.OS = realOS{}
	}
	return &Supervisor{
		cfg:    cfg,
		log:    cfg.Logger,
		os:     cfg.OS,
		events: make(chan func()),
		exited: make(chan exitEvent),
		done:   make(chan struct{}),
		procs:  make(map[int]*proc),
		pool:   make([]poolSlot, cfg.Workers),
	}, nil
}

// Run starts the workers and supervises them until a stop signal (SIGTERM,
// SIGINT, SIGQUIT) or Stop, then returns nil once every worker has exited.
// SIGHUP reloads, SIGUSR1 calls Config.Reopen. It returns an error at once
// when no worker of the first generation could be started.
func (s *Supervisor) Run() error {
	sigs, stopSignals := s.os.Notify(syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1)
	defer stopSignals()
	defer close(s.done)

	s.start = s.os.Now()
	s.log.Info("starting workers", "workers", s.cfg.Workers, "program", s.cfg.Path,
		"listen", s.cfg.Socket.Network+":"+s.cfg.Socket.Addr)
	var firstErr error
	for i := range s.pool {
		if err := s.startSlot(i); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if len(s.procs) == 0 && firstErr != nil {
		for i := range s.pool {
			s.cancelRestart(i)
		}
		return fmt.Errorf("starting workers: %w", firstErr)
	}
	if s.watchdogOn() {
		s.scheduleWatchdog()
	}
	s.scheduleHandoff()
	if s.cfg.StartTimeout > 0 {
		s.checkStart()
	} else {
		s.ready()
	}
	for !s.stopping || len(s.procs) > 0 {
		select {
		case sig := <-sigs:
			s.signal(sig)
		case ev := <-s.exited:
			s.reap(ev)
		case f := <-s.events:
			f()
		}
	}
	s.log.Info("all workers stopped")
	return s.startErr
}

// Reload replaces every worker as SIGHUP does.
func (s *Supervisor) Reload() { s.post(s.reload) }

// Stop stops the workers gracefully as SIGTERM does.
func (s *Supervisor) Stop() { s.post(func() { s.stop(syscall.SIGTERM) }) }

// StartTime is when Run started the pool.
func (s *Supervisor) StartTime() time.Time { return s.start }

// Workers lists the running workers, current and draining.
func (s *Supervisor) Workers() []WorkerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WorkerInfo, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, WorkerInfo{PID: p.pid, Slot: p.slot, Generation: p.gen, Started: p.started, Retiring: p.retiring})
	}
	return out
}

// post runs f in Run's loop; it does nothing once Run has returned.
func (s *Supervisor) post(f func()) {
	select {
	case s.events <- f:
	case <-s.done:
	}
}

func (s *Supervisor) signal(sig os.Signal) {
	s.log.Info("signal received", "signal", sig.String())
	switch sig {
	case syscall.SIGHUP:
		s.reload()
	case syscall.SIGUSR1:
		if s.cfg.Reopen != nil {
			s.cfg.Reopen()
			s.log.Info("log files reopened")
		}
	default:
		s.stop(sig.(syscall.Signal))
	}
}

// startSlot starts a worker at pool position i, or schedules a retry with
// back-off when that fails.
func (s *Supervisor) startSlot(i int) error {
	s.cancelRestart(i)
	if s.stopping {
		return nil
	}
	ps := &s.pool[i]
	p, err := s.spawn(i)
	if err != nil {
		ps.fails++
		d := backoff(ps.fails)
		s.log.Error("starting worker failed", "index", i, "err", err, "backoff", d)
		s.scheduleRestart(i, d)
		return err
	}
	ps.pid = p.pid
	s.flushPending()
	return nil
}

func (s *Supervisor) cancelRestart(i int) {
	ps := &s.pool[i]
	ps.seq++
	if ps.timer != nil {
		ps.timer.Stop()
		ps.timer = nil
	}
}

func (s *Supervisor) scheduleRestart(i int, d time.Duration) {
	ps := &s.pool[i]
	ps.seq++
	seq := ps.seq
	ps.timer = s.os.AfterFunc(d, func() {
		s.post(func() {
			if s.pool[i].seq == seq {
				s.pool[i].timer = nil
				s.startSlot(i)
			}
		})
	})
}

// reap handles a worker's exit: log it, and restart the pool position when
// the worker was its current one.
func (s *Supervisor) reap(ev exitEvent) {
	p := ev.p
	s.mu.Lock()
	delete(s.procs, p.pid)
	s.mu.Unlock()
	lived := s.os.Now().Sub(p.started)
	clean := ev.exit.Success
	s.noteExit(ev.exit)
	attrs := []any{"pid", p.pid, "index", p.index, "generation", p.gen, "status", ev.exit.Status, "uptime", lived.Round(time.Millisecond)}
	var served uint64
	if s.cfg.Board != nil {
		served = s.cfg.Board.Served(p.slot)
	}
	// A worker that exits 0 having served requests was recycled
	// (PHP_FCGI_MAX_REQUESTS, --max-rss); one the watchdog killed after
	// serving requests was stuck, not crashing at start. Neither backs off.
	recycled := (clean || p.killed) && served > 0
	if served > 0 {
		// A worker that served a request proved the pool can serve, even
		// if it was recycled before it counted as ready.
		s.served = true
	}
	if p.killed {
		attrs = append(attrs, "reason", "request terminate timeout")
	}
	if s.cfg.Board != nil {
		s.cfg.Board.Exited(p.slot, p.pid)
	}
	ps := &s.pool[p.index]
	if s.stopping || p.retiring || ps.pid != p.pid {
		s.log.Info("worker exited", attrs...)
		return
	}
	ps.pid = 0
	if lived >= quickExit || recycled {
		ps.fails = 0
		level := slog.LevelWarn
		if clean {
			level = slog.LevelInfo
		}
		s.log.Log(context.Background(), level, "worker exited; restarting", attrs...)
		s.startSlot(p.index)
		return
	}
	ps.fails++
	d := backoff(ps.fails)
	s.log.Warn("worker exited soon after start; restarting after back-off",
		append(attrs, "failures", ps.fails, "backoff", d)...)
	s.scheduleRestart(p.index, d)
}

// reload starts a new generation, then, after ReadyDelay, tells the old
// workers to finish their current request and exit.
func (s *Supervisor) reload() {
	if s.stopping {
		return
	}
	var old []*proc
	for _, p := range s.procs {
		if !p.retiring {
			old = append(old, p)
		}
	}
	s.gen++
	s.log.Info("reloading: starting a new generation", "generation", s.gen, "old_workers", len(old))
	for i := range s.pool {
		s.pool[i].fails = 0
		s.pool[i].pid = 0
		s.startSlot(i)
	}
	gen, since := s.gen, s.os.Now()
	s.os.AfterFunc(s.cfg.ReadyDelay, func() { s.post(func() { s.retireWhenReady(old, gen, since, false) }) })
}

const (
	// readyTimeout bounds the wait for a slow new generation on reload.
	readyTimeout = 10 * time.Second
	// readyPoll is how often a reload checks whether the new generation
	// serves.
	readyPoll = 20 * time.Millisecond
)

// retireWhenReady retires the old workers once the new generation gen
// serves. While no new worker runs at all (a broken program in a crash
// loop), the old ones keep serving.
func (s *Supervisor) retireWhenReady(old []*proc, gen int, since time.Time, warned bool) {
	if s.stopping || gen != s.gen {
		return // stop, or a later reload, retires them
	}
	now := s.os.Now()
	alive, ready := 0, 0
	for _, p := range s.procs {
		if p.gen != gen {
			continue
		}
		alive++
		if now.Sub(p.started) >= s.cfg.ReadyDelay && (s.cfg.Board == nil || s.cfg.Board.Attached(p.slot)) {
			ready++
		}
	}
	switch {
	case alive > 0 && (ready == alive || now.Sub(since) > readyTimeout):
		s.log.Debug("reload: retiring the old generation", "generation", gen, "new_ready", ready, "new_running", alive, "waited", now.Sub(since).Round(time.Millisecond))
		s.retire(old)
		return
	case alive == 0 && !warned:
		s.log.Error("reload: no new worker is running; the old ones keep serving", "generation", gen)
		warned = true
	}
	s.os.AfterFunc(readyPoll, func() { s.post(func() { s.retireWhenReady(old, gen, since, warned) }) })
}

// retire sends SIGTERM to the old workers still running and SIGKILL to
// those left after DrainTimeout.
func (s *Supervisor) retire(old []*proc) {
	var left []*proc
	for _, p := range old {
		if s.procs[p.pid] != p || p.retiring {
			continue
		}
		s.mu.Lock()
		p.retiring = true
		s.mu.Unlock()
		left = append(left, p)
		s.log.Debug("telling old worker to finish", "pid", p.pid, "generation", p.gen)
		s.os.Kill(p.pid, syscall.SIGTERM)
	}
	if len(left) == 0 {
		return
	}
	s.log.Info("old workers told to finish", "count", len(left), "drain_timeout", s.cfg.DrainTimeout)
	s.os.AfterFunc(s.cfg.DrainTimeout, func() { s.post(func() { s.kill(left, "drain timeout") }) })
}

// kill sends SIGKILL to the process groups of the listed workers that are
// still running.
func (s *Supervisor) kill(ps []*proc, why string) {
	for _, p := range ps {
		if s.procs[p.pid] == p {
			s.log.Warn("killing worker", "pid", p.pid, "reason", why)
			s.os.Kill(-p.pid, syscall.SIGKILL)
		}
	}
}

// secondSignalGap is how long after the first stop signal a second SIGTERM
// or SIGINT kills the workers at once.
const secondSignalGap = 500 * time.Millisecond

// stop tells every worker to finish and exit; a second SIGTERM or SIGINT
// kills them at once.
func (s *Supervisor) stop(sig syscall.Signal) {
	all := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		all = append(all, p)
	}
	if s.stopping {
		// A signal sent to a whole process group (by timeout(1), or by a
		// terminal) may arrive twice at once; only a later one counts.
		if sig != syscall.SIGQUIT && s.os.Now().Sub(s.stopAt) > secondSignalGap {
			s.kill(all, "second stop signal")
		}
		return
	}
	s.stopping = true
	s.stopAt = s.os.Now()
	for i := range s.pool {
		s.cancelRestart(i)
	}
	if s.cfg.Stopping != nil {
		s.cfg.Stopping()
	}
	s.log.Info("stopping workers", "count", len(all), "timeout", s.cfg.DrainTimeout)
	s.flushPending() // closes what no worker will take
	for _, p := range all {
		s.mu.Lock()
		p.retiring = true
		s.mu.Unlock()
		s.os.Kill(p.pid, s.cfg.StopSignal)
	}
	s.os.AfterFunc(s.cfg.DrainTimeout, func() { s.post(func() { s.kill(all, "stop timeout") }) })
}
