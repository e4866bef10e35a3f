package scoreboard

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Slot is a worker's own slot on a board. Its methods are called from the
// worker's request path: they do not allocate and make no system call.
// A Slot is not safe for concurrent use: one worker, one writer.
type Slot struct {
	board *Board
	w     []uint64 // the slot's words

	method, uri, script, user []byte // the slot's text areas

	begin    time.Time // start of the current request (monotonic)
	requests uint64
	accepted uint64
	conns    Conns
	idle     State // the state End returns to: Idle, or Finishing once called
	busy     bool  // between Begin and End
}

// AttachFromEnv maps the board named by MAGNET_SCOREBOARD ("<fd>:<slot>")
// and returns the worker's slot, marked Idle. It returns nil, nil when the
// variable is unset. The descriptor is closed once mapped.
func AttachFromEnv() (*Slot, error) {
	v, ok := os.LookupEnv(EnvVar)
	if !ok || v == "" {
		return nil, nil
	}
	fdText, slotText, ok := strings.Cut(v, ":")
	fd, err1 := strconv.Atoi(fdText)
	slot, err2 := strconv.Atoi(slotText)
	if !ok || err1 != nil || err2 != nil || fd < 0 || slot < 0 {
		return nil, fmt.Errorf("scoreboard: %s=%q: want <fd>:<slot>", EnvVar, v)
	}
	s, err := Attach(fd, slot)
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return s, nil
}

// Attach maps the board open on fd and returns slot, marked Idle and owned
// by the calling process. The caller keeps fd.
func Attach(fd, slot int) (*Slot, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("scoreboard: fd %d: %w", fd, err)
	}
	if st.Size < headerBytes || (st.Size-headerBytes)%slotBytes != 0 {
		return nil, fmt.Errorf("scoreboard: fd %d is not a scoreboard (size %d)", fd, st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("scoreboard: mmap fd %d: %w", fd, err)
	}
	n := int((st.Size - headerBytes) / slotBytes)
	b := newBoard(mem, n)
	h := b.words
	if h[hMagic] != magic || h[hVersion] != version || h[hSlots] != uint64(n) || h[hSlotBytes] != slotBytes {
		unix.Munmap(mem)
		return nil, errors.New("scoreboard: fd " + strconv.Itoa(fd) + " is not a scoreboard of this version")
	}
	if slot >= n {
		unix.Munmap(mem)
		return nil, fmt.Errorf("scoreboard: slot %d out of range (board has %d)", slot, n)
	}
	s := &Slot{board: b, w: b.slot(slot), idle: Idle}
	off := (headerWords + slot*slotWords) * 8
	area := func(i, n int) []byte {
		return mem[off+i*8 : off+i*8+n : off+i*8+n]
	}
	s.method = area(sMethod, methodBytes)
	s.uri = area(sURI, uriBytes)
	s.script = area(sScript, scriptBytes)
	s.user = area(sUser, userBytes)

	w := s.w
	atomic.AddUint64(&w[sSeq], 1)
	for i := sState; i < slotWords; i++ {
		w[i] = 0
	}
	w[sState] = uint64(Idle)
	w[sWorkerPID] = uint64(os.Getpid())
	atomic.AddUint64(&w[sSeq], 1)
	return s, nil
}

// Board returns a view of the whole board the slot belongs to, for
// reading the other slots and the header (to render the status page).
// A worker must not call its setters.
func (s *Slot) Board() *Board { return s.board }

// Accepted counts one accepted connection.
func (s *Slot) Accepted() {
	s.accepted++
	atomic.StoreUint64(&s.w[sAccepted], s.accepted)
}

// Begin marks the start of a request: the slot turns Busy and keeps
// copies of the method, URI and script, truncated to their fixed sizes.
//
// Begin also keeps the pool's count of busy workers, whose largest value
// is "max active processes".
func (s *Slot) Begin(method, uri, script []byte) {
	now := time.Now()
	s.begin = now
	if !s.busy {
		s.busy = true
		h := s.board.words
		active := atomic.AddUint64(&h[hActive], 1)
		raise(&h[hMaxActive], active)
	}
	w := s.w
	atomic.AddUint64(&w[sSeq], 1)
	w[sState] = uint64(Busy)
	w[sRequestStart] = uint64(now.UnixNano())
	w[sMethodLen] = uint64(copy(s.method, method))
	w[sURILen] = uint64(copy(s.uri, uri))
	w[sScriptLen] = uint64(copy(s.script, script))
	w[sUserLen] = 0
	w[sContentLength] = 0
	atomic.AddUint64(&w[sSeq], 1)
}

// Details records the current request's announced body length and
// authenticated user (REMOTE_USER); call it after Begin when known.
func (s *Slot) Details(contentLength int64, user []byte) {
	w := s.w
	atomic.AddUint64(&w[sSeq], 1)
	w[sContentLength] = uint64(contentLength)
	w[sUserLen] = uint64(copy(s.user, user))
	atomic.AddUint64(&w[sSeq], 1)
}

// End marks the end of the current request: the slot turns Idle (or back
// to Finishing), counts the request and keeps its duration and the memory
// it used.
func (s *Slot) End(memBytes uint64) {
	d := time.Since(s.begin)
	if s.busy {
		s.busy = false
		decrement(&s.board.words[hActive])
	}
	s.requests++
	w := s.w
	atomic.AddUint64(&w[sSeq], 1)
	w[sState] = uint64(s.idle)
	w[sRequests] = s.requests
	w[sDuration] = uint64(d)
	w[sMemory] = memBytes
	atomic.AddUint64(&w[sSeq], 1)
}

// SetRequestTimeout announces how long a request of this worker may run
// before it is to be killed (its request terminate timeout; 0: no limit),
// for a master that has no limit of its own.
func (s *Slot) SetRequestTimeout(d time.Duration) {
	w := s.w
	atomic.AddUint64(&w[sSeq], 1)
	w[sTimeout] = uint64(max(d, 0))
	atomic.AddUint64(&w[sSeq], 1)
}

// SlowLogged counts a request written to the slow log ("slow requests").
// It may be called from any goroutine of the worker.
func (s *Slot) SlowLogged() {
	atomic.AddUint64(&s.w[sSlow], 1)
}

// The connection counts below are called from the worker's loop. Each is
// one word, stored atomically outside the sequence lock.

// IdleClosed counts a keep-alive connection closed for idling too long.
func (s *Slot) IdleClosed() { s.count(&s.conns.IdleClosed, 0) }

// ReadTimedOut counts a request whose params or body stopped arriving.
func (s *Slot) ReadTimedOut() { s.count(&s.conns.ReadTimeouts, 1) }

// SendTimedOut counts a client dropped for not taking its response.
func (s *Slot) SendTimedOut() { s.count(&s.conns.SendTimeouts, 2) }

// Refused counts a request over the protocol limits, answered 431.
func (s *Slot) Refused() { s.count(&s.conns.Refused, 3) }

// AcceptPaused counts the worker stopping to accept, at its connection
// cap or out of file descriptors.
func (s *Slot) AcceptPaused() { s.count(&s.conns.AcceptPaused, 4) }

// StatChecked records how many cached scripts are checked for changes by
// stat(2) rather than inotify (a gauge, not a count).
func (s *Slot) StatChecked(n int) {
	s.conns.StatChecked = uint64(max(n, 0))
	atomic.StoreUint64(&s.w[sConns+5], s.conns.StatChecked)
}

// Holding records how many connections the worker holds now, for the
// master's balance of connections between workers (a gauge).
func (s *Slot) Holding(n int) {
	atomic.StoreUint64(&s.w[sHolding], uint64(max(n, 0)))
}

func (s *Slot) count(v *uint64, word int) {
	*v++
	atomic.StoreUint64(&s.w[sConns+word], *v)
}

// RecycledForRSS counts, in the pool figures, a worker that stops because
// its resident memory passed the pool's limit. It may be called from any
// goroutine of the worker.
func (s *Slot) RecycledForRSS() {
	atomic.AddUint64(&s.board.words[hRSSRecycles], 1)
}

// Finishing marks the worker as no longer accepting: it finishes what it
// is doing and exits.
func (s *Slot) Finishing() {
	s.idle = Finishing
	w := s.w
	if State(w[sState]) != Busy {
		atomic.AddUint64(&w[sSeq], 1)
		w[sState] = uint64(Finishing)
		atomic.AddUint64(&w[sSeq], 1)
	}
}

// Close unmaps the worker's view of the board.
func (s *Slot) Close() error {
	err := unix.Munmap(s.board.mem)
	s.board.mem, s.board.words, s.w = nil, nil, nil
	if err != nil {
		return fmt.Errorf("scoreboard: unmap: %w", err)
	}
	return nil
}
