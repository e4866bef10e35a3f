// Package worker is magnet's accept loop: it joins protocol (FastCGI
// bytes), scripts (the chunk cache) and luabind (the Lua state) and serves
// one request at a time.
//
// The loop runs on one locked OS thread over its own epoll set, not Go's
// netpoller: per keep-alive request it makes epoll_wait, read, write and
// the script's stat, and allocates nothing. Many connections share one
// worker, served in the order their requests arrive, so keep-alive
// connections from a web server never starve behind one another.
package worker

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/shdict"
	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/protocol"
	"github.com/magnet-fcgi/magnet/scripts"
)

// Reporter receives the worker's state for the supervisor's status page.
// Its methods run on the hot path and must not block or allocate.
type Reporter interface {
	Accepted()
	Begin(method, uri, script []byte)
	Details(contentLength int64, user []byte)
	End(memBytes uint64)
}

// Config is what a worker needs to serve.
type Config struct {
	ListenFD    int // a listening socket
	Scripts     scripts.Config
	Limits      protocol.Limits
	Debug       bool // error details in 500 responses
	MaxRequests int  // exit gracefully after this many requests; 0 = never
	// Timeout limits each script run (0: none); see luabind.State.SetTimeout.
	Timeout time.Duration
	// MemoryLimit caps the Lua heap in bytes (0: none); see
	// luabind.State.SetMemoryLimit.
	MemoryLimit uint64
	// IOTimeout is the default of ReadTimeout and SendTimeout (default 30s).
	IOTimeout time.Duration
	// ReadTimeout bounds receiving a request: from its first byte to the
	// end of its params, each wait for its body while the script reads
	// it, and dropping a body the script left unread (default IOTimeout).
	ReadTimeout time.Duration
	// SendTimeout bounds each wait for a client that does not take the
	// response; the client is dropped (default IOTimeout).
	SendTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request in
	// progress (default DefaultIdleTimeout; negative: never).
	IdleTimeout time.Duration
	// MaxConns caps the connections this worker holds; at the cap it
	// stops accepting and leaves new connections to the other workers
	// (default DefaultMaxConns, less where RLIMIT_NOFILE is lower).
	MaxConns int
	// BusyPoll is how long the worker keeps polling for the next request
	// after answering one, yielding the CPU between polls, before it sleeps
	// (0: sleep at once). A sleeping worker is woken by the kernel, which
	// on an idle CPU costs more than the request itself (busypoll.go).
	BusyPoll time.Duration
	// DrainTimeout bounds how long a stopping worker waits for half-received
	// requests, and after Stop for the web server to close its connections
	// (default 5s).
	DrainTimeout time.Duration
	// RequestTimeout, when set, ends the process (exit status 2) once one
	// request has run longer, even inside C where Timeout cannot stop it:
	// the self-watchdog of a worker that no master watches (watchdog.go).
	RequestTimeout time.Duration
	// Settled, when set, runs once on the loop's thread, after the
	// SettledAfter-th request has been answered: the worker is past the
	// requests that compiled its scripts and filled its caches.
	// magnet-worker drops the pages only those touched from its resident
	// set then.
	Settled      func()
	SettledAfter int
	// MaxRSS, when set, stops the worker gracefully, as MaxRequests does,
	// once its resident set is over this many bytes after requests.
	MaxRSS uint64
	// Shared are the dictionaries scripts see as magnet.shared.NAME
	// (shared.go).
	Shared []*shdict.Dict
	// MaxBody limits the request body in bytes (default DefaultMaxBody;
	// negative: none). A request whose CONTENT_LENGTH is over it is
	// answered 413 without running its script; a script reading past it
	// gets an error, and the client a 413 if nothing was sent yet.
	MaxBody int64
	// OutputBuffer is how much output a script buffers before it goes to
	// the client (default DefaultOutputBuffer; negative: the whole
	// response, unless the script flushes).
	OutputBuffer int
	// SlowLogTimeout, when set, logs once the script, URI and Lua
	// traceback of a request still running after it (slowlog.go).
	SlowLogTimeout time.Duration
	// SlowLog receives the slow log's entries (nil: the Logger).
	SlowLog io.Writer
	// Special answers requests whose SCRIPT_NAME it claims (status and ping
	// pages) without Lua; it returns a complete CGI response, or nil.
	Special func(scriptName, query []byte) []byte
	// AllowedClients, when set, are the only peer addresses accepted on
	// a TCP listener; others are closed at once (allow.go). Unix sockets
	// are not checked.
	AllowedClients []netip.Prefix
	// Sandbox, when set, confines the scripts (luabind.State.Sandbox).
	// Init is a Lua file run once in the global environment before the
	// first request (requires, connections, warmed caches); its error
	// fails New.
	Init     string
	Sandbox  *luabind.Sandbox
	Reporter Reporter
	Logger   *slog.Logger

	// Uploads: where magnet.request.files puts uploaded files, and limits.
	Uploads luabind.Uploads
	// Modules: require's search path in front of each DocRoot's
	// ?.lua and ?/init.lua (luabind.State.SetModules).
	Modules luabind.Modules

	// HandoffFD, when not 0, is this worker's end of magnetd's hand-off
	// channel: idle connections move to and from other workers over it
	// (handoff.go).
	HandoffFD int
}

// Server is one worker's accept loop.
type Server struct {
	cfg   Config
	log   *slog.Logger
	st    *luabind.State
	cache *scripts.Cache

	epfd, evfd  int
	listenFD    int
	listening   bool
	filter      *clientFilter // AllowedClients, nil when not checked
	conns       []*conn       // by fd
	nconns      int
	last        *conn // the connection served last
	streak      int   // requests served in sole-connection mode in a row
	busy        bool  // a request was answered since the last busy poll
	pollSkip    int   // answers left before the next busy poll (busypoll.go)
	pollBackoff int   // the back-off's current length, in answers
	free        []*conn
	events      []unix.EpollEvent

	requests int
	stopping atomic.Bool
	fullStop atomic.Bool // Stop: no other worker takes over (drain.go)
	ho       *channel    // magnetd's hand-off channel; nil without (handoff.go)
	holdRep  HoldReporter
	wd       watchdog
	drainEnd time.Time

	// containment (timeouts.go); times are since epoch
	connRep     ConnReporter
	count       counters
	epoch       time.Time
	sweepEvery  time.Duration
	waitMS      int // epoll_wait's timeout: idleAccept, or less for short timeouts
	nextSweep   time.Duration
	paused      bool // the listening socket is out of the epoll set
	fdLimited   bool // paused by EMFILE or ENFILE, not by MaxConns
	pausedConns int  // connections held when accepting paused
	retryAt     time.Duration
	fdWarnAt    time.Duration

	// per-request scratch, reused
	index []uint32
	wbuf  []byte
	req   luabind.Request
	body  bodyReader
	errb  []byte
}

// New prepares a worker: the Lua state and the script cache. The listening
// socket is set non-blocking (all workers sharing it are magnet workers).
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = 30 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = cfg.IOTimeout
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = cfg.IOTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultMaxConns()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.OutputBuffer == 0 {
		cfg.OutputBuffer = DefaultOutputBuffer
	}
	st, err := luabind.NewState()
	if err != nil {
		return nil, err
	}
	if cfg.Sandbox != nil {
		if err := st.Sandbox(*cfg.Sandbox); err != nil {
			st.Close()
			return nil, err
		}
	}
	st.SetTimeout(cfg.Timeout)
	st.SetMemoryLimit(cfg.MemoryLimit)
	if err := registerShared(st, cfg.Shared); err != nil {
		st.Close()
		return nil, fmt.Errorf("magnet.shared: %w", err)
	}
	if err := registerSQL(st, cfg.Sandbox); err != nil {
		st.Close()
		return nil, err
	}
	if err := registerRedis(st); err != nil {
		st.Close()
		return nil, err
	}
	st.SetMaxBody(cfg.MaxBody)
	st.SetOutputBuffer(cfg.OutputBuffer)
	st.SetUploads(cfg.Uploads)
	if err := setModules(st, cfg); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.Scripts.Logger == nil {
		cfg.Scripts.Logger = cfg.Logger
	}
	cache, err := scripts.New(st, cfg.Scripts)
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, st: st, cache: cache, listenFD: cfg.ListenFD, epfd: -1, evfd: -1,
		events: make([]unix.EpollEvent, 64), index: make([]uint32, 0, 256), wbuf: make([]byte, 0, 16<<10)}
	s.body.s = s
	if cfg.AllowedClients != nil {
		s.filter = &clientFilter{allowed: cfg.AllowedClients}
	}
	s.req.Body = &s.body
	s.req.Flush = s.flushOut
	st.SetLogger(s.scriptLog)
	if cfg.Init != "" {
		if err := s.runInit(cfg.Init); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.wd.on = cfg.RequestTimeout > 0 || cfg.MaxRSS > 0 || cfg.SlowLogTimeout > 0
	s.wd.slow = cfg.SlowLogTimeout > 0
	s.connRep, _ = cfg.Reporter.(ConnReporter)
	s.holdRep, _ = cfg.Reporter.(HoldReporter)
	if s.ho, err = openHandoff(cfg.HandoffFD); err != nil {
		s.Close()
		return nil, fmt.Errorf("hand-off channel: %w", err)
	}
	s.epoch = time.Now()
	s.sweepEvery = sweepInterval(cfg.IdleTimeout, cfg.ReadTimeout)
	s.nextSweep = s.sweepEvery
	s.waitMS = min(idleAccept, int(s.sweepEvery/time.Millisecond))
	if err := s.open(); err != nil {
		s.Close() // the Lua state and whatever open got to
		return nil, err
	}
	s.listening = true
	return s, nil
}

// open sets up the loop's descriptors: the listening socket in its epoll
// set, and the eventfd that wakes it for Shutdown.
func (s *Server) open() error {
	if err := unix.SetNonblock(s.listenFD, true); err != nil {
		return fmt.Errorf("listen socket: %w", err)
	}
	var err error
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		s.epfd = -1
		return fmt.Errorf("epoll: %w", err)
	}
	if s.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		s.evfd = -1
		return fmt.Errorf("eventfd: %w", err)
	}
	if err := s.watch(s.evfd, unix.EPOLLIN); err != nil {
		return err
	}
	return s.watch(s.listenFD, unix.EPOLLIN|unix.EPOLLEXCLUSIVE)
}

func (s *Server) watch(fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add fd %d: %w", fd, err)
	}
	return nil
}

// Shutdown asks the loop to stop gracefully: stop accepting, finish the
// request in progress and half-received ones, close idle connections.
// It is safe to call from any goroutine and from signal handlers' goroutines.
func (s *Server) Shutdown() {
	if s.stopping.Swap(true) {
		return
	}
	var one = [8]byte{1}
	unix.Write(s.evfd, one[:])
}

// Requests is the number of requests served so far.
func (s *Server) Requests() int { return s.requests }

// Close frees the Lua state and the loop's descriptors.
func (s *Server) Close() {
	for _, c := range s.conns {
		if c != nil {
			unix.Close(c.fd)
		}
	}
	unix.Close(s.epfd)
	unix.Close(s.evfd)
	if s.ho != nil {
		s.ho.rc.Close()
		unix.Close(s.ho.fd)
	}
	s.cache.Close()
	s.st.Close()
}

// Serve runs the loop until Shutdown (or MaxRequests) and every connection
// is done. It locks the calling goroutine to its OS thread.
func (s *Server) Serve() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s.bindCache()
	defer s.startWatchdog()()
	defer s.startHandoff()()
	for {
		timeout := s.waitMS
		if s.stopping.Load() {
			if s.listening && s.fullStop.Load() {
				s.beginFullStop()
			} else if s.listening && s.ho != nil && !s.ho.broken {
				s.beginHandoff()
			} else if s.listening {
				s.beginDrain()
			}
			if s.ho != nil && s.ho.leaving {
				if s.drainHandoff() || time.Now().After(s.drainEnd) {
					return nil
				}
			} else if (s.nconns == 0 && !s.receiving()) || time.Now().After(s.drainEnd) {
				return nil
			}
			timeout = 100
		} else if s.serveSole() {
			continue
		}
		n, errno := s.busyWait()
		if n == 0 && errno == 0 {
			n, errno = epollWait(s.epfd, s.events, timeout)
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return fmt.Errorf("epoll_wait: %w", errno)
		}
		s.tick()
		if n == 0 && s.listening && !s.paused {
			// A quiet spell: take a connection whose wake-up went to a
			// worker that died or stopped before accepting it.
			s.acceptBatch()
			continue
		}
		accepted := false
		for i := 0; i < n; i++ {
			fd := int(s.events[i].Fd)
			switch {
			case fd == s.evfd:
				var b [8]byte
				unix.Read(s.evfd, b[:])
				s.handoffEvents()
			case fd == s.listenFD:
				if !accepted && s.listening && !s.paused && !s.stopping.Load() {
					s.acceptBatch()
				}
				accepted = true
			default:
				if fd < len(s.conns) && s.conns[fd] != nil {
					s.serveConn(s.conns[fd])
				}
			}
		}
	}
}

// Sole-connection mode: a worker holding exactly one connection waits for
// its next request in a blocking read instead of epoll_wait + read, which
// saves a system call per request. No other connection of this worker can
// starve meanwhile; new connections are left to the other workers, and
// every soleStreak requests (or soleWait of silence) the loop goes back to
// epoll_wait to look at the listening socket itself.
const (
	soleStreak = 16
	soleWait   = time.Millisecond
)

// serveSole serves the next request of the worker's only connection with a
// blocking read; false means the loop should go through epoll_wait.
func (s *Server) serveSole() bool {
	c := s.last
	if s.nconns != 1 || c == nil || c.closed || s.streak >= soleStreak {
		s.streak = 0
		return false
	}
	s.streak++
	if !c.timeoutSet {
		tv := unix.NsecToTimeval(int64(soleWait))
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return false
		}
		c.timeoutSet = true
	}
	n, errno := s.busyRead(c)
	if errno == unix.EAGAIN {
		n, errno = blockingRead(c.fd, c.pc.ReadBuffer())
	}
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		s.streak = soleStreak // idle: wait in epoll_wait
		return false
	case errno != 0 || n == 0:
		s.closeConn(c)
		return true
	}
	c.pc.Advance(n)
	s.process(c)
	return true
}

// stopListening ends accepting and starts the drain timeout, and returns
// the connections the kernel had queued on the listening socket, for the
// caller to serve: they may have woken this worker and no other
// (EPOLLEXCLUSIVE), and may carry a request the web server will not retry.
// The whole queue is taken before any of it is served, so that a client
// that reconnects as soon as it is answered cannot keep a stopping worker
// alive; the backlog bounds it. A worker paused at its connection cap stays
// out of the epoll set: it must not resume accepting while it drains.
func (s *Server) stopListening() []int {
	s.listening = false
	s.paused = false
	s.drainEnd = time.Now().Add(s.cfg.DrainTimeout)
	unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, s.listenFD, nil)
	return s.takeQueued(nil)
}

// takeQueued accepts every connection queued on the listening socket, and
// appends them to fds.
func (s *Server) takeQueued(fds []int) []int {
	for {
		fd, errno := s.acceptConn()
		if errno == unix.EINTR || errno == unix.ECONNABORTED {
			continue
		}
		if errno != 0 {
			return fds
		}
		fds = append(fds, fd)
	}
}

// beginDrain stops accepting, answers the connections already queued, and
// closes the connections with nothing pending.
func (s *Server) beginDrain() {
	for _, fd := range s.stopListening() {
		s.adopt(fd)
	}
	// A connection is closed only between requests: one that already got
	// answers and has nothing more in flight, in our buffer or the
	// kernel's. A connection that has not sent its first request yet is
	// served once (then closed), within the drain timeout: its client could
	// not retry it elsewhere.
	for _, c := range s.conns {
		if c == nil || c.lingering || c.served == 0 || c.pc.Buffered() > 0 {
			continue
		}
		if s.fill(c) {
			s.process(c)
			continue
		}
		s.closeConn(c)
	}
	s.log.Info("draining", "connections", s.nconns)
}

// idleAccept is how long epoll_wait waits before the worker tries an
// accept on its own. With EPOLLEXCLUSIVE the kernel wakes one waiting
// worker per new connection; if that worker is killed or stops before
// accepting, nothing else would wake up for the connection.
const idleAccept = 100 // milliseconds

// acceptBatch accepts once, or a few times while each accepted connection
// was a one-request one that is already done: that saves an epoll_wait per
// request under load without making keep-alive connections wait.
func (s *Server) acceptBatch() {
	for k := 0; k < 8 && !s.paused && !s.stopping.Load(); k++ {
		if ok, done := s.accept(); !ok || !done {
			return
		}
	}
}

// accept takes one connection and serves what it brought; ok says whether
// a connection was accepted, done whether it was also served and closed.
func (s *Server) accept() (ok, done bool) {
	if s.nconns >= s.cfg.MaxConns {
		s.pauseAccept(false)
		return false, false
	}
	fd, errno := s.acceptConn()
	if errno != 0 {
		switch errno {
		case unix.EAGAIN, unix.EINTR, unix.ECONNABORTED, unix.EINVAL: // EINVAL: shut down by Stop
		case unix.EMFILE, unix.ENFILE:
			s.pauseAccept(true)
		default:
			s.log.Warn("accept", "err", errno)
		}
		return false, false
	}
	return true, s.adopt(fd)
}

// adopt serves what an accepted connection brought and, unless that closed
// it, watches it; done says whether it was served and closed.
func (s *Server) adopt(fd int) (done bool) {
	c := s.newConn(fd)
	if s.cfg.Reporter != nil {
		s.cfg.Reporter.Accepted()
	}
	// The request often arrives with the connection: serve it before
	// registering with epoll, which a one-request connection never needs.
	s.serveConn(c)
	if c.closed {
		return true
	}
	if err := s.watch(fd, unix.EPOLLIN); err != nil {
		s.log.Warn("accept", "err", err)
		s.closeConn(c)
		return false
	}
	if s.nconns >= s.cfg.MaxConns {
		s.pauseAccept(false)
	}
	// A web server opening its pool of keep-alive connections at once
	// may have woken another worker for the next one: let it run, or
	// this worker, still running, takes most of the burst.
	yield()
	return false
}

func (s *Server) newConn(fd int) *conn {
	var c *conn
	if n := len(s.free); n > 0 {
		c = s.free[n-1]
		s.free = s.free[:n-1]
		c.pc.Reset()
	} else {
		c = &conn{pc: protocol.NewConn(s.cfg.Limits)}
	}
	c.fd = fd
	c.closed = false
	c.timeoutSet = false
	c.served = 0
	c.lingering = false
	c.seq = 0
	c.seenKey = phaseUnknown
	for fd >= len(s.conns) {
		s.conns = append(s.conns, nil)
	}
	s.conns[fd] = c
	s.nconns++
	s.noteHolding()
	return c
}

func (s *Server) closeConn(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	unix.Close(c.fd) // also leaves the epoll set
	s.conns[c.fd] = nil
	s.nconns--
	s.noteHolding()
	if len(s.free) < 64 {
		s.free = append(s.free, c)
	}
}
