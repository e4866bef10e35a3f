package supervisor

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/magnet-fcgi/magnet/internal/handoff"
)

// Hand-off: with Config.Handoff each worker gets one end of a
// SOCK_SEQPACKET socketpair (named by MAGNET_HANDOFF) and the master keeps
// the other. A worker sends the idle connections it gives up as
// SCM_RIGHTS; the master, which knows which workers live, which generation
// is current and, from the Board, which are idle and how many connections
// each holds, relays each to the worker that should serve it. The master
// never reads or writes a connection. The messages are internal/handoff's,
// one byte each, which the worker (worker/handoff.go) speaks too.
//
//   - A worker says it is ready once it serves; only then is it given
//     connections.
//   - A stopping worker (recycle, reload, a SIGTERM of its own) says it
//     leaves; the master acknowledges and sends it nothing more, and the
//     worker hands over every idle connection. With no worker to take them
//     yet (one worker, recycling), the master holds them until the next
//     worker starts; only a full stop closes them.
//   - Head-of-line: a worker inside one request for HandoffAfter while
//     another is idle is asked to release its idle connections; a helper
//     thread of the worker sends them while the script runs.
//   - Balance: a worker holding more than its share while another holds
//     less is asked to give the difference.

const (
	// sendWait bounds a relay's wait for room in a worker's socket.
	sendWait = 100 * time.Millisecond
	// balanceQuiet is how long the balance waits after asking a worker
	// to give connections, so that the board shows the result.
	balanceQuiet = 30 * time.Millisecond
)

// Holder is implemented by a Board that shows how many connections each
// worker holds; the balance needs it.
type Holder interface {
	Holding(slot int) int
}

// procHandoff is a worker's hand-off state, owned by Run's loop.
type procHandoff struct {
	conn     *net.UnixConn
	ready    bool      // it serves, its signals handled: it may take connections
	leaving  bool      // it said it stops: send it nothing more
	released time.Time // when it was last asked to release its connections
	given    time.Time // when it was last given connections
	holding  int       // connections it holds, as the relay estimates
}

// handoffState is the pool's hand-off state, owned by Run's loop.
type handoffState struct {
	pending   []int // connections waiting for a worker to take them
	balanceAt time.Time
	ticking   bool
}

// handoffPair makes the socketpair for one worker: the master's end and
// the worker's file.
func handoffPair() (*net.UnixConn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	mf := os.NewFile(uintptr(fds[0]), "handoff")
	c, err := net.FileConn(mf)
	mf.Close()
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "handoff-worker"), nil
}

// handoffEnv is the variable naming the worker's end at fd.
func handoffEnv(fd int) string { return handoff.EnvVar + "=" + strconv.Itoa(fd) }

// readHandoff reads worker p's messages until it exits, and passes them to
// Run's loop.
func (s *Supervisor) readHandoff(p *proc) {
	c := p.ho.conn
	defer c.Close()
	buf := make([]byte, 8)
	oob := make([]byte, syscall.CmsgSpace(4*handoff.MaxFDs))
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil || (n == 0 && oobn == 0) {
			return
		}
		fds := handoff.ParseRights(oob[:oobn])
		if n == 0 {
			handoff.CloseAll(fds)
			continue
		}
		switch buf[0] {
		case handoff.Conns:
			if len(fds) > 0 {
				s.postOr(func() { s.relay(p, fds) }, func() { handoff.CloseAll(fds) })
			}
		case handoff.Leaving:
			handoff.CloseAll(fds)
			s.post(func() { s.leaving(p) })
		case handoff.Ready:
			handoff.CloseAll(fds)
			s.post(func() {
				p.ho.ready = true
				s.flushPending()
			})
		default:
			handoff.CloseAll(fds)
		}
	}
}

// postOr runs f in Run's loop, or orElse when Run has returned.
func (s *Supervisor) postOr(f, orElse func()) {
	select {
	case s.events <- f:
	case <-s.done:
		orElse()
	}
}

// leaving records that p stops and acknowledges it; the second byte tells
// it whether any worker will take its connections.
func (s *Supervisor) leaving(p *proc) {
	p.ho.leaving = true
	full := byte(0)
	if s.stopping {
		full = 1
	}
	s.sendTo(p, []byte{handoff.Ack, full}, nil)
}

// takers are the workers that may receive connections: the current
// generation's, serving (a worker still starting could die with them in
// its channel), not stopping.
func (s *Supervisor) takers(except *proc) []*proc {
	var out []*proc
	for _, p := range s.procs {
		if p != except && p.gen == s.gen && !p.retiring && p.ho.conn != nil && p.ho.ready && !p.ho.leaving {
			out = append(out, p)
		}
	}
	return out
}

// relay gives the connections fds, handed over by from, to the other
// workers: each to the one holding the fewest, idle ones first.
func (s *Supervisor) relay(from *proc, fds []int) {
	if s.stopping {
		// A full stop: nobody will take them.
		handoff.CloseAll(fds)
		return
	}
	to := s.takers(from)
	if len(to) == 0 {
		s.hand.pending = append(s.hand.pending, fds...)
		return
	}
	holder, _ := s.cfg.Board.(Holder)
	busy := make(map[*proc]int, len(to))
	now := s.os.Now()
	for _, p := range to {
		if holder != nil {
			p.ho.holding = holder.Holding(p.slot)
		}
		busy[p], _ = s.busyness(p, now)
	}
	groups := make(map[*proc][]int, len(to))
	for _, fd := range fds {
		var best *proc
		for _, p := range to {
			if best == nil || less(p, best, busy) {
				best = p
			}
		}
		best.ho.holding++
		groups[best] = append(groups[best], fd)
	}
	for p, g := range groups {
		p.ho.given = now
		if err := s.sendTo(p, []byte{handoff.Conns}, g); err != nil {
			s.log.Warn("handing connections to a worker failed; holding them", "pid", p.pid, "err", err)
			s.hand.pending = append(s.hand.pending, g...)
			continue
		}
		handoff.CloseAll(g)
	}
}

// How busy a worker is, by the board: idle, inside a request, or inside
// one request for HandoffAfter or longer (stuck: it gives connections
// away, so it must not be given any).
const (
	idleNow = iota
	busyNow
	stuckNow
)

// busyness reads worker p's state on the board, and the start of its
// request.
func (s *Supervisor) busyness(p *proc, now time.Time) (int, time.Time) {
	if s.cfg.Board == nil {
		return idleNow, time.Time{}
	}
	r, busy := s.cfg.Board.Request(p.slot, p.pid)
	switch {
	case !busy:
		return idleNow, time.Time{}
	case s.cfg.HandoffAfter > 0 && now.Sub(r.Start) >= s.cfg.HandoffAfter:
		return stuckNow, r.Start
	}
	return busyNow, r.Start
}

// less orders the workers that may take a connection: idle before busy
// before stuck, then by the connections they hold.
func less(a, b *proc, busy map[*proc]int) bool {
	if busy[a] != busy[b] {
		return busy[a] < busy[b]
	}
	return a.ho.holding < b.ho.holding
}

// sendTo sends one message with fds to worker p.
func (s *Supervisor) sendTo(p *proc, msg []byte, fds []int) error {
	c := p.ho.conn
	if c == nil {
		return os.ErrClosed
	}
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	c.SetWriteDeadline(time.Now().Add(sendWait))
	_, _, err := c.WriteMsgUnix(msg, oob, nil)
	return err
}

// flushPending relays the connections held for want of a worker.
func (s *Supervisor) flushPending() {
	if len(s.hand.pending) == 0 {
		return
	}
	if s.stopping {
		handoff.CloseAll(s.hand.pending)
		s.hand.pending = nil
		return
	}
	if len(s.takers(nil)) == 0 {
		return
	}
	fds := s.hand.pending
	s.hand.pending = nil
	for len(fds) > 0 {
		k := min(len(fds), handoff.MaxFDs)
		s.relay(nil, fds[:k:k])
		fds = fds[k:]
	}
}

// handoffTick is the periodic check for head-of-line blocking and balance;
// it only reads the board.
func (s *Supervisor) handoffTick() {
	if s.stopping {
		s.flushPending()
		s.hand.ticking = false
		return
	}
	s.flushPending()
	b := s.cfg.Board
	to := s.takers(nil)
	if b != nil && len(to) > 1 {
		now := s.os.Now()
		holder, _ := b.(Holder)
		var free, stuck []*proc // free: the workers not stuck in a request
		for _, p := range to {
			if holder != nil {
				p.ho.holding = holder.Holding(p.slot)
			}
			if st, start := s.busyness(p, now); st == stuckNow {
				// Its count on the board is that of before its script
				// began until the script returns: connections given to
				// it since are not in it.
				if !p.ho.given.Before(start.Add(-s.cfg.HandoffAfter)) {
					p.ho.holding = max(p.ho.holding, 2)
				}
				stuck = append(stuck, p)
			} else {
				free = append(free, p)
			}
		}
		// A stuck worker is asked again every HandoffAfter: a release its
		// reader could not act on, or a connection given to it just
		// before or while its script runs, moves then.
		for _, p := range stuck {
			if len(free) > 0 && p.ho.holding > 1 && now.Sub(p.ho.released) >= s.cfg.HandoffAfter {
				p.ho.released = now
				s.sendTo(p, []byte{handoff.Release}, nil)
			}
		}
		// A stuck worker's connections are moving away, and it must
		// take none: the balance is among the others.
		if holder != nil && len(free) > 1 && now.After(s.hand.balanceAt) {
			s.balance(free, now)
		}
	}
	s.scheduleHandoff()
}

// balance asks the worker holding the most connections to give some when
// it holds more than its share and another holds less.
func (s *Supervisor) balance(to []*proc, now time.Time) {
	total := 0
	var hi, lo *proc
	for _, p := range to {
		total += p.ho.holding
		if hi == nil || p.ho.holding > hi.ho.holding {
			hi = p
		}
		if lo == nil || p.ho.holding < lo.ho.holding {
			lo = p
		}
	}
	floor, ceil := total/len(to), (total+len(to)-1)/len(to)
	if hi.ho.holding <= ceil || lo.ho.holding >= floor {
		return
	}
	// The relay gives each to the worker holding the fewest.
	give := min(hi.ho.holding-ceil, 255)
	s.hand.balanceAt = now.Add(balanceQuiet)
	s.sendTo(hi, []byte{handoff.Balance, byte(give)}, nil)
}

// handoffEvery is the period of handoffTick.
func (s *Supervisor) handoffEvery() time.Duration {
	d := 10 * time.Millisecond
	if a := s.cfg.HandoffAfter; a > 0 {
		d = min(d, max(a/2, 2*time.Millisecond))
	}
	return d
}

func (s *Supervisor) scheduleHandoff() {
	if !s.cfg.Handoff || s.stopping {
		s.hand.ticking = false
		return
	}
	s.hand.ticking = true
	s.os.AfterFunc(s.handoffEvery(), func() { s.post(s.handoffTick) })
}
