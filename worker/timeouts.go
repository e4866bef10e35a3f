package worker

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Containment of connections: idle and read timeouts, and the cap on
// connections per worker.
//
// The timers cost nothing per request. A connection records no time when
// it reads or answers: it only counts the requests it finished (conn.seq).
// Every sweepEvery or so the loop reads the clock after epoll_wait and
// sweeps its connections: a connection whose phase (idle, reading a
// request, lingering) and count are those the last sweep saw has been in
// that phase since at least that sweep, and is closed once that is longer
// than the phase's timeout. So a connection is closed between the timeout
// and the timeout plus two sweep intervals after the phase began, never
// before.

// Defaults of the connection limits.
const (
	// DefaultIdleTimeout is longer than the keep-alive timeout of a web
	// server's pool of FastCGI connections (nginx's upstream
	// keepalive_timeout is 60s), so that the web server, not the worker,
	// closes an idle pooled connection: a worker closing it first races
	// with the next request the web server sends on it.
	DefaultIdleTimeout = 75 * time.Second
	// DefaultMaxConns bounds a worker's connections when RLIMIT_NOFILE
	// does not bound them lower. A worker serves one request at a time;
	// its connections are a web server's keep-alive pool, a handful to a
	// few hundred, and 1024 of them cost a worker about 13 MiB of buffers.
	DefaultMaxConns = 1024
	// fdHeadroom is what the default cap leaves of RLIMIT_NOFILE for the
	// worker's own descriptors and the files scripts open.
	fdHeadroom = 64
	// fdRetry is how long a worker that ran out of descriptors stops
	// accepting, unless one of its connections closes first.
	fdRetry = time.Second
)

// CloseReason says why the worker closed a connection or refused a request.
type CloseReason uint8

// Reasons given to ConnReporter.ConnClosed.
const (
	CloseIdle  CloseReason = iota // idle keep-alive connection past IdleTimeout
	CloseRead                     // a request (params or body) stopped arriving for ReadTimeout
	CloseSend                     // the client did not take the response for SendTimeout
	CloseLimit                    // a request over the protocol limits, answered 431
)

var reasonNames = [...]string{"idle timeout", "read timeout", "send timeout", "request over the limits"}

func (r CloseReason) String() string { return reasonNames[r] }

// ConnReporter is implemented by a Reporter that also counts what the
// worker did to contain connections, for the status page. Its methods
// run on the loop's thread and must not block or allocate.
type ConnReporter interface {
	// ConnClosed counts a connection closed for reason.
	ConnClosed(reason CloseReason)
	// AcceptPaused counts the worker stopping to accept: at MaxConns, or
	// out of file descriptors.
	AcceptPaused()
}

// Counters are the connection counts of one worker since it started.
type Counters struct {
	IdleClosed   uint64 // idle connections closed after IdleTimeout
	ReadTimeouts uint64 // requests whose params or body stopped arriving
	SendTimeouts uint64 // clients that stopped taking a response
	Refused      uint64 // requests over the protocol limits, answered 431
	AcceptPaused uint64 // times the worker stopped accepting (cap or EMFILE)
}

// counters is Counters, updated by the loop and read by any goroutine.
type counters struct {
	idle, read, send, refused, paused atomic.Uint64
}

// Counters returns the worker's connection counts; safe from any goroutine.
func (s *Server) Counters() Counters {
	return Counters{
		IdleClosed:   s.count.idle.Load(),
		ReadTimeouts: s.count.read.Load(),
		SendTimeouts: s.count.send.Load(),
		Refused:      s.count.refused.Load(),
		AcceptPaused: s.count.paused.Load(),
	}
}

// contained counts a connection closed (or a request refused) for reason
// and tells the reporter.
func (s *Server) contained(reason CloseReason) {
	switch reason {
	case CloseIdle:
		s.count.idle.Add(1)
	case CloseRead:
		s.count.read.Add(1)
	case CloseSend:
		s.count.send.Add(1)
	case CloseLimit:
		s.count.refused.Add(1)
	}
	if s.connRep != nil {
		s.connRep.ConnClosed(reason)
	}
}

// defaultMaxConns is DefaultMaxConns, or less where RLIMIT_NOFILE leaves
// less room.
func defaultMaxConns() int {
	n := DefaultMaxConns
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(n+fdHeadroom) {
		n = int(rl.Cur) - fdHeadroom
	}
	return max(n, 1)
}

// sweepInterval is how often connections are checked: a quarter of the
// shortest timeout, at most a second.
func sweepInterval(timeouts ...time.Duration) time.Duration {
	every := time.Second
	for _, d := range timeouts {
		if d > 0 {
			every = min(every, d/4)
		}
	}
	return max(every, 10*time.Millisecond)
}

// The phases of a connection the sweeper tells apart.
const (
	phaseIdle    = iota // between requests, nothing buffered
	phaseRead           // a request begun, or part of a record buffered
	phaseLinger         // answered; waiting for the rest of a body to drop
	phaseUnknown        // a connection no sweep has seen yet
)

func (c *conn) phase() uint64 {
	switch {
	case c.lingering:
		return phaseLinger
	case c.pc.Buffered() > 0 || c.pc.InRequest():
		return phaseRead
	}
	return phaseIdle
}

// tick runs after each epoll wake-up: it resumes accepting when the
// worker may, and sweeps the connections when a sweep is due.
func (s *Server) tick() {
	now := time.Since(s.epoch)
	if s.paused && s.mayResume(now) {
		s.resumeAccept()
	}
	if now < s.nextSweep {
		return
	}
	s.nextSweep = now + s.sweepEvery
	for _, c := range s.conns {
		if c == nil || c.closed {
			continue
		}
		ph := c.phase()
		key := uint64(c.seq)<<2 | ph
		if key != c.seenKey {
			c.seenKey, c.seenAt = key, now
			continue
		}
		limit, reason := s.cfg.ReadTimeout, CloseRead
		if ph == phaseIdle {
			limit, reason = s.cfg.IdleTimeout, CloseIdle
		}
		if limit > 0 && now-c.seenAt >= limit {
			s.log.Debug("closing connection", "fd", c.fd, "reason", reason.String(), "after", limit.String())
			s.contained(reason)
			s.closeConn(c)
		}
	}
}

// pauseAccept takes the listening socket out of the epoll set, so that the
// kernel wakes the other workers for new connections and this one does not
// spin on a socket it will not accept from. outOfFDs says accept failed
// with EMFILE or ENFILE rather than the worker reaching MaxConns.
func (s *Server) pauseAccept(outOfFDs bool) {
	if s.paused || !s.listening {
		return
	}
	unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, s.listenFD, nil)
	s.paused = true
	s.pausedConns = s.nconns
	s.fdLimited = outOfFDs
	s.count.paused.Add(1)
	if s.connRep != nil {
		s.connRep.AcceptPaused()
	}
	if !outOfFDs {
		s.log.Debug("connection cap reached, not accepting", "connections", s.nconns)
		return
	}
	now := time.Since(s.epoch)
	s.retryAt = now + fdRetry
	if now >= s.fdWarnAt {
		// once a minute at most: this is the flood the pause prevents
		s.fdWarnAt = now + time.Minute
		s.log.Warn("out of file descriptors, not accepting; lower --max-conns or raise the limit", "connections", s.nconns)
	}
}

// mayResume reports whether a paused worker may accept again.
func (s *Server) mayResume(now time.Duration) bool {
	if !s.listening || s.nconns >= s.cfg.MaxConns {
		return false
	}
	return !s.fdLimited || s.nconns < s.pausedConns || now >= s.retryAt
}

func (s *Server) resumeAccept() {
	if err := s.watch(s.listenFD, unix.EPOLLIN|unix.EPOLLEXCLUSIVE); err != nil {
		s.log.Warn("resuming accept", "err", err)
		s.retryAt = time.Since(s.epoch) + fdRetry
		s.fdLimited = true
		return
	}
	s.paused = false
	s.log.Debug("accepting again", "connections", s.nconns)
}
