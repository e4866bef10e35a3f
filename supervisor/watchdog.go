package supervisor

import (
	"syscall"
	"time"
)

// Request is a worker's current request, as the board shows it.
type Request struct {
	// Start is when the request began.
	Start time.Time
	// Timeout is the request terminate timeout the worker announced for
	// itself; 0: none.
	Timeout time.Duration
	Script  string
	URI     string
}

// watchdogTick is how often the watchdog looks at the workers' current
// requests: a worker is killed at most this long after its request passed
// the limit.
const watchdogTick = 250 * time.Millisecond

// watchdogOn reports whether the pool kills workers stuck in a request.
func (s *Supervisor) watchdogOn() bool {
	return s.cfg.Board != nil && s.cfg.RequestTimeout >= 0
}

func (s *Supervisor) scheduleWatchdog() {
	s.os.AfterFunc(watchdogTick, func() { s.post(s.watchdog) })
}

// watchdog kills, with SIGKILL to its process group, each worker whose
// current request has run past the request terminate timeout. The
// instruction hook behind the worker's own --timeout cannot stop time
// spent inside C (a pathological pattern, os.execute), nor can SIGTERM
// reach a worker stuck there; only a kill frees the worker and its client.
func (s *Supervisor) watchdog() {
	now := s.os.Now()
	for _, p := range s.procs {
		if p.killed {
			continue
		}
		r, ok := s.cfg.Board.Request(p.slot, p.pid)
		if !ok {
			continue
		}
		limit := s.cfg.RequestTimeout
		if limit == 0 {
			limit = r.Timeout
		}
		if d := now.Sub(r.Start); limit > 0 && d > limit {
			p.killed = true
			s.log.Warn("request terminate timeout: killing worker", "pid", p.pid, "script", r.Script, "uri", r.URI,
				"duration", d.Round(time.Millisecond), "timeout", limit)
			s.os.Kill(-p.pid, syscall.SIGKILL)
			s.cfg.Board.Terminated(p.slot)
		}
	}
	s.scheduleWatchdog()
}
