package worker

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/handoff"
)

// Hand-off: under magnetd a connection belongs to no worker for life. Each
// worker holds one end of a SOCK_SEQPACKET socketpair (Config.HandoffFD)
// whose other end magnetd holds; idle connections travel over it as
// SCM_RIGHTS, and magnetd, which sees every worker's state on the
// scoreboard, relays each to the worker that should serve it. Only an idle
// connection moves: no request begun, nothing buffered in user space.
// Bytes the kernel holds for it travel with it; the new owner reads them.
//
// The messages are internal/handoff's, which magnetd speaks too.
//
// Ownership while a script runs: the loop holds ho.own at all times except
// inside luabind.State.Run. The reader goroutine acts on handoff.Release only
// when it gets ho.own with TryLock, so only while a script runs, and then
// takes idle connections other than the running one: it removes them from
// the epoll set and from s.conns, sends them, closes its descriptors and
// lists them in ho.moved. The loop, back from Run, takes the lock again and
// settles ho.moved (its counts and free list). The running connection is
// never touched, and Lua's callbacks (body reads, flushes) touch only it.
// Nothing of this costs a system call per request: two uncontended mutex
// operations around Run, and the busy check is magnetd's reading of the
// scoreboard.

// HoldReporter is implemented by a Reporter that also shows how many
// connections the worker holds, so that magnetd can balance them. Holding
// runs on the loop's thread, and must not block or allocate.
type HoldReporter interface {
	Holding(n int)
}

// channel is the worker's end of the hand-off channel.
type channel struct {
	fd int           // the socket; the loop and the reader send on it under own
	rc *net.UnixConn // a duplicate, read by the reader goroutine

	own   sync.Mutex // held by the loop except while a script runs
	cur   int        // fd of the connection whose script runs
	moved []*conn    // taken by the reader while a script ran

	inMu  sync.Mutex
	inbox []int // connections received, for the loop to adopt

	give    atomic.Int32 // connections magnetd asked for (handoff.Balance)
	acked   atomic.Bool  // handoff.Ack received
	full    atomic.Bool  // handoff.Ack said no worker will take connections
	leaving bool         // handoff.Leaving sent (loop)
	broken  bool         // the channel failed: behave as without magnetd

	out, in atomic.Uint64 // connections handed over and received

	fds []int // scratch
}

// Handoffs counts the connections this worker handed to others and those
// it received from others; zero without magnetd.
func (s *Server) Handoffs() (out, in uint64) {
	if s.ho == nil {
		return 0, 0
	}
	return s.ho.out.Load(), s.ho.in.Load()
}

// openHandoff takes over the socketpair end fd; nil when fd is 0 (none:
// fd 0 is the listening socket).
func openHandoff(fd int) (*channel, error) {
	if fd <= 0 {
		return nil, nil
	}
	unix.CloseOnExec(fd)
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(dup)
	f := os.NewFile(uintptr(dup), "handoff")
	c, err := net.FileConn(f) // dups again, and sets non-blocking
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, os.ErrInvalid
	}
	return &channel{fd: fd, rc: uc, cur: -1}, nil
}

// startHandoff locks the loop's ownership and starts the reader; it
// returns what stops the reader. It runs on the loop's thread.
func (s *Server) startHandoff() (stop func()) {
	h := s.ho
	if h == nil {
		return func() {}
	}
	h.own.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.readHandoff(h)
	}()
	// Only now, its signals handled and its loop about to run, may the
	// worker be given connections: one given earlier would die with a
	// worker that fails to start.
	if err := h.send([]byte{handoff.Ready}, nil); err != nil {
		s.log.Warn("telling magnetd this worker serves", "err", err)
		h.broken = true
	}
	return func() {
		// The lock stays held: the reader must not take connections
		// once the loop is gone.
		h.rc.Close()
		<-done
	}
}

// readHandoff receives magnetd's messages until the channel closes.
func (s *Server) readHandoff(h *channel) {
	buf := make([]byte, 8)
	oob := make([]byte, unix.CmsgSpace(4*handoff.MaxFDs))
	for {
		n, oobn, _, _, err := h.rc.ReadMsgUnix(buf, oob)
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
			h.inMu.Lock()
			h.inbox = append(h.inbox, fds...)
			h.inMu.Unlock()
			s.wake()
			continue
		case handoff.Ack:
			h.full.Store(n > 1 && buf[1] == 1)
			h.acked.Store(true)
			s.wake()
		case handoff.Release:
			if h.own.TryLock() {
				// The loop is inside a script: connections given to it
				// and not yet adopted go on too.
				s.passInbox()
				s.takeIdle(handoff.MaxFDs, h.cur)
				h.own.Unlock()
			}
		case handoff.Balance:
			if n > 1 && buf[1] > 0 {
				h.give.Store(int32(buf[1]))
				s.wake()
			}
		}
		handoff.CloseAll(fds)
	}
}

// wake interrupts the loop's epoll_wait.
func (s *Server) wake() {
	one := [8]byte{1}
	unix.Write(s.evfd, one[:])
}

// send sends one message with fds on the channel, waiting briefly for room.
func (h *channel) send(msg []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		err := unix.Sendmsg(h.fd, msg, oob, nil, 0)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if werr := waitFD(h.fd, unix.POLLOUT, time.Second); werr != nil {
				return werr
			}
			continue
		}
		return err
	}
}

// passInbox sends on the connections received and not yet adopted; the
// reader, holding ho.own while a script runs.
func (s *Server) passInbox() {
	h := s.ho
	if h.broken {
		return
	}
	h.inMu.Lock()
	in := h.inbox
	h.inbox = nil
	h.inMu.Unlock()
	for len(in) > 0 {
		k := min(len(in), handoff.MaxFDs)
		if err := h.send([]byte{handoff.Conns}, in[:k]); err != nil {
			// Keep them: the loop adopts them after the script.
			h.inMu.Lock()
			h.inbox = append(h.inbox, in...)
			h.inMu.Unlock()
			return
		}
		handoff.CloseAll(in[:k])
		h.out.Add(uint64(k))
		in = in[k:]
	}
}

// idle reports whether c may move: no request begun, nothing buffered.
func idle(c *conn) bool {
	return c != nil && !c.closed && !c.lingering && !c.pc.InRequest() && c.pc.Buffered() == 0
}

// takeIdle sends up to limit idle connections, other than the one on fd
// skip, to magnetd, and lists them in ho.moved for settleMoved. The caller
// holds ho.own: the loop, or the reader while a script runs.
func (s *Server) takeIdle(limit, skip int) int {
	h := s.ho
	if h.broken || limit <= 0 {
		return 0
	}
	moved := 0
	for moved < limit {
		h.fds = h.fds[:0]
		var batch [handoff.MaxFDs]*conn
		for fd := range s.conns {
			if fd == skip || len(h.fds) == min(limit-moved, handoff.MaxFDs) {
				continue
			}
			if c := s.conns[fd]; idle(c) {
				batch[len(h.fds)] = c
				h.fds = append(h.fds, fd)
			}
		}
		if len(h.fds) == 0 {
			break
		}
		// Out of the epoll set first: the registration belongs to the
		// open file, which outlives this process's descriptor.
		for _, fd := range h.fds {
			unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		}
		if err := h.send([]byte{handoff.Conns}, h.fds); err != nil {
			s.log.Warn("handing connections over failed; keeping them", "err", err)
			h.broken = true
			for _, fd := range h.fds {
				s.watch(fd, unix.EPOLLIN)
			}
			break
		}
		for i, fd := range h.fds {
			c := batch[i]
			unix.Close(fd)
			c.closed = true
			s.conns[fd] = nil
			h.moved = append(h.moved, c)
		}
		moved += len(h.fds)
		h.out.Add(uint64(len(h.fds)))
	}
	return moved
}

// settleMoved accounts for the connections takeIdle moved; loop only.
func (s *Server) settleMoved() {
	h := s.ho
	if len(h.moved) == 0 {
		return
	}
	for i, c := range h.moved {
		s.nconns--
		if s.last == c {
			s.last = nil
		}
		if len(s.free) < 64 {
			s.free = append(s.free, c)
		}
		h.moved[i] = nil
	}
	h.moved = h.moved[:0]
	s.noteHolding()
}

// noteHolding reports the connections held, for magnetd's balance.
func (s *Server) noteHolding() {
	if s.holdRep != nil {
		s.holdRep.Holding(s.nconns)
	}
}

// handoffEvents runs on the loop's thread when the eventfd fired: it adopts
// the connections received and hands over those magnetd asked for.
func (s *Server) handoffEvents() {
	h := s.ho
	if h == nil {
		return
	}
	h.inMu.Lock()
	in := h.inbox
	h.inbox = nil
	h.inMu.Unlock()
	for _, fd := range in {
		s.adoptMoved(fd)
	}
	if n := h.give.Swap(0); n > 0 && !s.stopping.Load() {
		s.takeIdle(int(n), -1)
		s.settleMoved()
	}
}

// adoptMoved serves a connection another worker handed over: it may
// already hold a request in the kernel's buffer, so it is read at once.
func (s *Server) adoptMoved(fd int) {
	unix.SetNonblock(fd, true)
	c := s.newConn(fd)
	c.served = 1 // it was in use: a drain treats it as a kept-alive one
	s.ho.in.Add(1)
	s.serveConn(c)
	if c.closed {
		return
	}
	if err := s.watch(fd, unix.EPOLLIN); err != nil {
		s.log.Warn("handed-over connection", "err", err)
		s.closeConn(c)
	}
}

// beginHandoff is the stop of one worker among others that live on
// (recycle, reload, a SIGTERM to the worker): it stops accepting, takes
// what is queued, and tells magnetd it is leaving; once magnetd has
// acknowledged, every idle connection is handed over (drainHandoff).
func (s *Server) beginHandoff() {
	h := s.ho
	for _, fd := range s.stopListening() {
		s.adopt(fd)
	}
	if err := h.send([]byte{handoff.Leaving}, nil); err != nil {
		s.log.Warn("telling magnetd this worker leaves", "err", err)
		h.broken = true
		s.beginDrain()
		return
	}
	h.leaving = true
	s.log.Info("stopping: handing connections over", "connections", s.nconns)
}

// drainHandoff runs each turn of a stopping worker's loop; done says the
// worker may return from Serve.
func (s *Server) drainHandoff() (done bool) {
	h := s.ho
	if h.broken || !h.acked.Load() {
		return h.broken && s.nconns == 0
	}
	s.handoffEvents()
	if h.full.Load() {
		// magnetd stops: nobody takes them; close the idle ones as a
		// drain does without magnetd.
		h.broken = true
		s.listening = true // beginDrain's bookkeeping
		s.beginDrain()
		return s.nconns == 0
	}
	s.takeIdle(1<<30, -1)
	s.settleMoved()
	return s.nconns == 0 && !s.receiving()
}

// receiving reports whether connections another worker handed over wait
// for the loop to adopt them: a stopping worker must not leave before it
// has, or they would close under a web server that may be writing on them.
func (s *Server) receiving() bool {
	h := s.ho
	if h == nil {
		return false
	}
	h.inMu.Lock()
	defer h.inMu.Unlock()
	return len(h.inbox) > 0
}

// handingOver reports whether a stopping worker hands its connections over
// rather than closing them.
func (s *Server) handingOver() bool { return s.ho != nil && !s.ho.broken }
