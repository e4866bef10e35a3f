package worker

import (
	"time"

	"golang.org/x/sys/unix"
)

// Busy polling (Config.BusyPoll). When a client sends its next request
// a few microseconds after taking the last answer, a worker asleep in
// read or epoll_wait costs the kernel a wake-up, and its CPU, idle for
// those microseconds, has to be woken too: on a virtual machine that is an
// inter-processor interrupt and an exit to the hypervisor, more than the
// whole Lua side of a small script. Polling for a bounded time after each
// answer keeps the CPU awake and finds the request without a wake-up.
// Each poll is followed by sched_yield, so that a process waiting for the
// same CPU (another worker, the web server) can run; still, a yielded
// poller waits behind the time slices of busy processes on its CPU, where
// a sleeping worker would be woken at once, which is why polling is off
// by default. A worker polls only after it answered something, so an idle
// worker sleeps.
//
// Polling pays only while requests follow each other closely, so it backs
// off: a poll that finds nothing (a miss) skips the polls of the next
// answers, twice as many after each further miss, up to maxPollSkip; a
// poll that finds a request ends the back-off. At a rate too low to hit,
// a worker polls once in maxPollSkip answers, which costs it next to
// nothing; a hot connection is polled after every answer.

// maxPollSkip is the longest back-off, in answers not followed by a poll.
const maxPollSkip = 256

// pollBegin says whether to poll after this answer.
func (s *Server) pollBegin() bool {
	if !s.busy {
		return false
	}
	s.busy = false
	if s.pollSkip > 0 {
		s.pollSkip--
		return false
	}
	return true
}

// pollEnd records a poll's outcome for the back-off.
func (s *Server) pollEnd(hit bool) {
	if hit {
		s.pollBackoff = 0
		return
	}
	s.pollBackoff = min(max(2*s.pollBackoff, 1), maxPollSkip)
	s.pollSkip = s.pollBackoff
}

// busyRead polls c for its next request; EAGAIN means nothing came within
// Config.BusyPoll (or busy polling is off).
func (s *Server) busyRead(c *conn) (int, unix.Errno) {
	if !s.pollBegin() {
		return 0, unix.EAGAIN
	}
	end := time.Now().Add(s.cfg.BusyPoll)
	for {
		n, errno := rawRead(c.fd, c.pc.ReadBuffer())
		if errno != unix.EAGAIN || s.stopping.Load() || time.Now().After(end) {
			s.pollEnd(errno != unix.EAGAIN)
			return n, errno
		}
		yield()
	}
}

// busyWait polls the epoll set without blocking for up to Config.BusyPoll
// after an answer; 0 events and errno 0 mean nothing came. A worker
// holding several connections does not poll: its next request is rarely
// far off, and when workers share a CPU its polling takes the time of a
// busier one, which shows in the pool's tail latency (BENCHMARKS.md).
func (s *Server) busyWait() (int, unix.Errno) {
	if s.nconns > 1 || !s.pollBegin() {
		return 0, 0
	}
	end := time.Now().Add(s.cfg.BusyPoll)
	for {
		n, errno := epollPoll(s.epfd, s.events)
		if n != 0 || (errno != 0 && errno != unix.EINTR) || s.stopping.Load() || time.Now().After(end) {
			s.pollEnd(n != 0)
			return n, errno
		}
		yield()
	}
}

// yield lets another runnable thread on this CPU go first.
func yield() {
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}
