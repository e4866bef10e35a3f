package worker

import (
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/protocol"
)

// The self-watchdog and the RSS check run on a goroutine of their own,
// beside the loop's locked thread: the Go runtime keeps it running while
// that thread is inside C, where the instruction hook behind Timeout never
// fires (a pathological string.find, os.execute, a blocking C module).
//
// Per request the loop only copies the script name and bumps a counter
// twice (odd while a request runs): no clock read, no system call. The
// goroutine ticks; a request whose count it saw odd and unchanged for
// RequestTimeout has run at least that long, and the process ends. One
// that passes SlowLogTimeout first gets its traceback logged (slowlog.go).

// RSSReporter is implemented by a Reporter that also counts the workers
// recycled for passing MaxRSS, for the status page. RecycledForRSS may be
// called from any goroutine.
type RSSReporter interface {
	RecycledForRSS()
}

// watchdog is the loop's side of the self-watchdog, the slow log and the
// RSS check.
type watchdog struct {
	on     bool          // RequestTimeout, SlowLogTimeout or MaxRSS is set
	slow   bool          // SlowLogTimeout is set: keep the URI too
	seq    atomic.Uint64 // incremented at each request's start and end
	script [256]byte     // current script name, written before seq turns odd
	n      int
	uri    [256]byte // current REQUEST_URI, for the slow log
	nuri   int

	// the stat-checked scripts gauge (noteScripts), on the loop's thread
	statRep  StatReporter
	statLen  int // the cache's size at the last report
	statReqs int // requests since the last report
}

// StatReporter is implemented by a Reporter that also shows how many
// cached scripts are checked for changes by stat rather than inotify
// (scripts.Cache.StatChecked). StatChecked runs on the loop's thread.
type StatReporter interface {
	StatChecked(n int)
}

// statEvery bounds how many requests pass between two reports of the
// stat-checked scripts when the cache's size does not change.
const statEvery = 1024

// noteScripts reports the stat-checked scripts after a request when the
// cache gained or lost a script, and now and then, since a script can
// lose its watch without the cache changing size. Counting walks the
// cache, so it is not done per request.
func (s *Server) noteScripts() {
	w := &s.wd
	if w.statRep == nil {
		return
	}
	w.statReqs++
	if n := s.cache.Len(); n != w.statLen || w.statReqs >= statEvery {
		w.statLen, w.statReqs = n, 0
		w.statRep.StatChecked(s.cache.StatChecked())
	}
}

// begin marks the start of a request running script.
func (w *watchdog) begin(script []byte, params protocol.Params) {
	if !w.on {
		return
	}
	w.n = copy(w.script[:], script)
	if w.slow {
		uri, _ := params.Lookup("REQUEST_URI")
		w.nuri = copy(w.uri[:], uri)
	}
	w.seq.Add(1)
}

// end marks the end of the request.
func (w *watchdog) end() {
	if w.on {
		w.seq.Add(1)
	}
}

// rssEvery is how often the RSS is read while requests are served.
const rssEvery = 100 * time.Millisecond

// watchTick is the watchdog goroutine's tick for the configured limits:
// a stuck request is ended (or logged as slow) at most about one tick past
// its limit.
func watchTick(timeout, slow time.Duration, maxRSS uint64) time.Duration {
	tick := time.Second
	for _, d := range []time.Duration{timeout, slow} {
		if d > 0 {
			tick = min(tick, max(d/10, 10*time.Millisecond))
		}
	}
	if maxRSS > 0 {
		tick = min(tick, rssEvery)
	}
	return tick
}

// startWatchdog starts the goroutine when RequestTimeout, SlowLogTimeout
// or MaxRSS is set, and returns what stops it. It runs on the loop's
// thread.
func (s *Server) startWatchdog() (stop func()) {
	if r, ok := s.cfg.Reporter.(StatReporter); ok {
		s.wd.statRep = r
		r.StatChecked(s.cache.StatChecked())
	}
	if !s.wd.on {
		return func() {}
	}
	var tracer *luabind.Tracer
	if s.cfg.SlowLogTimeout > 0 {
		var err error
		if tracer, err = s.st.Tracer(); err != nil {
			s.log.Warn("--slowlog-timeout: no tracebacks", "err", err)
		}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		s.watchRequests(done, tracer)
	}()
	return func() {
		close(done)
		<-exited
	}
}

// exit ends the process; a test replaces it.
var exit = os.Exit

// exitWatchdog is the exit status of a worker ended by its watchdog.
const exitWatchdog = 2

func (s *Server) watchRequests(done <-chan struct{}, tracer *luabind.Tracer) {
	limit, maxRSS, slow := s.cfg.RequestTimeout, s.cfg.MaxRSS, s.cfg.SlowLogTimeout
	tick := watchTick(limit, slow, maxRSS)
	t := time.NewTicker(tick)
	defer t.Stop()
	statm := -1
	if maxRSS > 0 {
		fd, err := unix.Open("/proc/self/statm", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			s.log.Warn("--max-rss: cannot read the RSS; no limit", "err", err)
			maxRSS = 0
		} else {
			statm = fd
			defer unix.Close(fd)
		}
	}
	var (
		seen    uint64    // the odd count of the request being timed
		since   time.Time // when it was first seen
		logged  uint64    // the odd count of the last request logged as slow
		rssSeen uint64    // the count at the last RSS reading
		rssAt   time.Time
		buf     [128]byte
	)
	for {
		var now time.Time
		select {
		case <-done:
			return
		case now = <-t.C:
		}
		n := s.wd.seq.Load()
		if limit > 0 || slow > 0 {
			switch {
			case n&1 == 0:
				seen = 0
			case n != seen:
				seen, since = n, now
			case slow > 0 && logged != n && now.Sub(since) >= slow:
				logged = n
				s.slowRequest(n, now.Sub(since), tracer)
			case limit > 0 && now.Sub(since) >= limit:
				// The loop's thread is stuck in this request and does not
				// write the name while it is.
				script := string(s.wd.script[:s.wd.n])
				if s.wd.seq.Load() == n {
					s.log.Error("request terminate timeout: ending the worker", "script", script,
						"duration", now.Sub(since).Round(time.Millisecond).String(), "timeout", limit.String())
					exit(exitWatchdog)
					return
				}
			}
		}
		// Ticks jitter: half a tick early still counts as on time.
		if maxRSS > 0 && n != rssSeen && now.Sub(rssAt) >= rssEvery-tick/2 && !s.stopping.Load() {
			rssSeen, rssAt = n, now
			if rss, ok := readRSS(statm, buf[:]); ok && rss > maxRSS {
				s.log.Info("max rss reached, exiting", "rss", rss, "max_rss", maxRSS)
				if r, ok := s.cfg.Reporter.(RSSReporter); ok {
					r.RecycledForRSS()
				}
				s.Shutdown()
			}
		}
	}
}

// readRSS reads the resident set size, in bytes, from /proc/self/statm
// open on fd: its second field, in pages.
func readRSS(fd int, buf []byte) (uint64, bool) {
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || n <= 0 {
		return 0, false
	}
	f := buf[:n]
	i := 0
	for i < len(f) && f[i] != ' ' {
		i++
	}
	var pages uint64
	digits := 0
	for i++; i < len(f) && f[i] >= '0' && f[i] <= '9'; i++ {
		pages = pages*10 + uint64(f[i]-'0')
		digits++
	}
	if digits == 0 {
		return 0, false
	}
	return pages * uint64(os.Getpagesize()), true
}
