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
// same CPU (another worker, the web server) can run; still, the scheduler
// gives a polling worker its share of a CPU it shares with a busy one,
// which is why polling is off by default. A worker polls only after it
// answered something, so an idle worker sleeps.

// busyRead polls c for its next request; EAGAIN means nothing came within
// Config.BusyPoll (or busy polling is off).
func (s *Server) busyRead(c *conn) (int, unix.Errno) {
	if !s.busy {
		return 0, unix.EAGAIN
	}
	s.busy = false
	end := time.Now().Add(s.cfg.BusyPoll)
	for {
		n, errno := rawRead(c.fd, c.pc.ReadBuffer())
		if errno != unix.EAGAIN || s.stopping.Load() || time.Now().After(end) {
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
	if !s.busy || s.nconns > 1 {
		return 0, 0
	}
	s.busy = false
	end := time.Now().Add(s.cfg.BusyPoll)
	for {
		n, errno := epollPoll(s.epfd, s.events)
		if n != 0 || (errno != 0 && errno != unix.EINTR) || s.stopping.Load() || time.Now().After(end) {
			return n, errno
		}
		yield()
	}
}

// yield lets another runnable thread on this CPU go first.
func yield() {
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}
