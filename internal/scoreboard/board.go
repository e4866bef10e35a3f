package scoreboard

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EnvVar names the environment variable that tells a worker where its
// board and slot are: "<fd>:<slot>".
const EnvVar = "MAGNET_SCOREBOARD"

// Board is a mapped scoreboard. The master creates it with Create and is
// the only process that should call its setters; a worker gets a read-only
// view of the same memory through (*Slot).Board.
type Board struct {
	mem   []byte   // the whole mapping
	words []uint64 // mem as words
	n     int      // number of slots
	file  *os.File // the memfd; nil in a worker

	mu sync.Mutex // serializes the master's writes to the header and to free slots
}

// Create makes a board with n slots in a new memfd and maps it.
// The memfd is sealed against resizing, so no worker can shrink it under
// the master.
func Create(n int) (*Board, error) {
	if n <= 0 || n > 1<<16 {
		return nil, fmt.Errorf("scoreboard: bad slot count %d", n)
	}
	fd, err := unix.MemfdCreate("magnet-scoreboard", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("scoreboard: memfd_create: %w", err)
	}
	size := headerBytes + n*slotBytes
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("scoreboard: ftruncate: %w", err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("scoreboard: seal memfd: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("scoreboard: mmap: %w", err)
	}
	b := newBoard(mem, n)
	b.file = os.NewFile(uintptr(fd), "magnet-scoreboard")
	w := b.words
	w[hMagic] = magic
	w[hVersion] = version
	w[hSlots] = uint64(n)
	w[hSlotBytes] = slotBytes
	w[hStart] = uint64(time.Now().UnixNano())
	return b, nil
}

func newBoard(mem []byte, n int) *Board {
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), len(mem)/8)
	return &Board{mem: mem, words: words, n: n}
}

// File returns the board's memfd, to be passed to a worker through
// exec.Cmd.ExtraFiles (the first extra file is fd 3 in the child).
// It is nil for a worker's view of the board.
func (b *Board) File() *os.File { return b.file }

// Env returns the environment entry that tells a worker its board is
// inherited as fd and its slot is slot, e.g. "MAGNET_SCOREBOARD=3:0".
func Env(fd, slot int) string {
	return EnvVar + "=" + strconv.Itoa(fd) + ":" + strconv.Itoa(slot)
}

// Len returns the number of slots.
func (b *Board) Len() int { return b.n }

// Close unmaps the board and closes its memfd. Slots and views of the
// board must not be used afterwards.
func (b *Board) Close() error {
	err := unix.Munmap(b.mem)
	b.mem, b.words = nil, nil
	if b.file != nil {
		if cerr := b.file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("scoreboard: close: %w", err)
	}
	return nil
}

// Holding is how many connections the worker in slot i holds now.
func (b *Board) Holding(i int) int {
	return int(atomic.LoadUint64(&b.slot(i)[sHolding]))
}

// slot returns the words of slot i.
func (b *Board) slot(i int) []uint64 {
	if i < 0 || i >= b.n {
		panic("scoreboard: slot index out of range: " + strconv.Itoa(i))
	}
	off := headerWords + i*slotWords
	return b.words[off : off+slotWords : off+slotWords]
}

// Reset records that the master started a worker with pid in slot.
// If the slot still holds a previous worker that was not released, its
// counters are added to the pool totals first. Call it right after the
// worker process started; the slot reads Starting until the worker
// attaches (which may happen before Reset: both orders work).
func (b *Board) Reset(slot, pid int) {
	w := b.slot(slot)
	b.mu.Lock()
	defer b.mu.Unlock()
	old := atomic.LoadUint64(&w[sPID])
	if old != 0 && old != uint64(pid) && atomic.LoadUint64(&w[sWorkerPID]) != uint64(pid) {
		b.release(w)
		old = 0
	}
	if old == 0 {
		atomic.AddUint64(&b.words[hLive], 1)
	}
	atomic.StoreUint64(&w[sStarted], uint64(time.Now().UnixNano()))
	atomic.StoreUint64(&w[sPID], uint64(pid))
}

// Release records that the worker in slot has exited: its counters are
// added to the pool totals and the slot becomes free. Call it after the
// worker was reaped and before starting the next one in the same slot.
// Releasing a free slot does nothing.
func (b *Board) Release(slot int) {
	w := b.slot(slot)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.release(w)
}

// release frees slot words w; the caller holds b.mu.
func (b *Board) release(w []uint64) {
	h := b.words
	pid, wpid := atomic.LoadUint64(&w[sPID]), atomic.LoadUint64(&w[sWorkerPID])
	if pid == 0 && wpid == 0 {
		return
	}
	if pid != 0 {
		atomic.AddUint64(&h[hLive], ^uint64(0))
	}
	// A worker that died inside a request still counts as busy.
	if wpid != 0 && State(atomic.LoadUint64(&w[sState])) == Busy {
		decrement(&h[hActive])
	}
	atomic.AddUint64(&h[hSeq], 1)
	h[hBaseAccepted] += atomic.LoadUint64(&w[sAccepted])
	h[hBaseRequests] += atomic.LoadUint64(&w[sRequests])
	h[hBaseSlow] += atomic.LoadUint64(&w[sSlow])
	for i := range connsWords - 1 { // not the StatChecked gauge
		h[hBaseConns+i] += atomic.LoadUint64(&w[sConns+i])
	}
	atomic.AddUint64(&h[hSeq], 1)

	// The worker is gone, so the master may write its words. A worker
	// killed inside a write leaves an odd sequence: make it even.
	seq := atomic.LoadUint64(&w[sSeq])
	atomic.StoreUint64(&w[sSeq], seq|1)
	for i := sPID; i < slotWords; i++ {
		w[i] = 0
	}
	atomic.StoreUint64(&w[sSeq], (seq|1)+1)
}

// decrement subtracts 1 from the counter at p unless it is 0.
func decrement(p *uint64) {
	for {
		v := atomic.LoadUint64(p)
		if v == 0 || atomic.CompareAndSwapUint64(p, v, v-1) {
			return
		}
	}
}

// raise sets the counter at p to v if v is larger.
func raise(p *uint64, v uint64) {
	for {
		old := atomic.LoadUint64(p)
		if v <= old || atomic.CompareAndSwapUint64(p, old, v) {
			return
		}
	}
}

// SetPool sets the pool name and process manager shown on the status page.
func (b *Board) SetPool(name, pm string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.words
	atomic.AddUint64(&h[hSeq], 1)
	h[hPoolLen] = uint64(copy(b.bytes(hPool, poolBytes), name))
	h[hPMLen] = uint64(copy(b.bytes(hPM, pmBytes), pm))
	atomic.AddUint64(&h[hSeq], 1)
}

// SetStart sets the pool's start time (Create sets it to the creation time).
func (b *Board) SetStart(t time.Time) {
	b.set(hStart, uint64(t.UnixNano()))
}

// SetSlowThreshold records the workers' slow log timeout, for the status
// page; the workers count what they log (Slot.SlowLogged).
func (b *Board) SetSlowThreshold(d time.Duration) {
	b.set(hSlowThreshold, uint64(max(d, 0)))
}

// SetListenQueue records the kernel's listen queue figures: the
// connections waiting now and the queue's size. The largest queue seen is
// kept as the maximum.
func (b *Board) SetListenQueue(queued, size uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.words
	atomic.AddUint64(&h[hSeq], 1)
	h[hListenQueue] = queued
	h[hListenQueueLen] = size
	h[hMaxListenQueue] = max(h[hMaxListenQueue], queued)
	atomic.AddUint64(&h[hSeq], 1)
}

// NoteActive records a count of active processes, keeping the largest.
// Workers keep the maximum themselves as requests begin; the master may
// add what it observes.
func (b *Board) NoteActive(active uint64) {
	raise(&b.words[hMaxActive], active)
}

// AddMaxChildrenReached counts one more time that every worker was found
// busy with connections waiting.
func (b *Board) AddMaxChildrenReached() {
	atomic.AddUint64(&b.words[hMaxChildrenReached], 1)
}

// AddWatchdogKill counts one worker killed because its request ran past
// the request terminate timeout.
func (b *Board) AddWatchdogKill() {
	atomic.AddUint64(&b.words[hWatchdogKills], 1)
}

func (b *Board) set(i int, v uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setHeader(i, v)
}

// setHeader writes one header word; the caller holds b.mu.
func (b *Board) setHeader(i int, v uint64) {
	h := b.words
	atomic.AddUint64(&h[hSeq], 1)
	h[i] = v
	atomic.AddUint64(&h[hSeq], 1)
}

// bytes returns n bytes of the board starting at word index i.
func (b *Board) bytes(i, n int) []byte {
	return b.mem[i*8 : i*8+n : i*8+n]
}
