package shdict

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The lock is a word holding its owner's pid. Taking a free lock is one
// compare-and-swap; a waiter spins, then yields, then sleeps on the word
// (a futex, woken by the unlocking process), and between sleeps checks that
// the owner still lives. A waiter that finds the owner dead swaps its own
// pid in for the dead one's and rolls back the owner's interrupted
// operation. A recycled pid (the owner dead and its pid reused before
// anyone looked) would keep the lock held; pids are not reused that fast.

const (
	spins      = 200
	yields     = 20
	sleepNanos = 2_000_000 // between checks that the owner lives
)

func (d *Dict) lockWord() *uint32 { return (*uint32)(unsafe.Pointer(&d.mem[hLock])) }

// lock takes the dictionary's lock and, when the previous owner died in
// the middle of an operation, rolls that operation back.
func (d *Dict) lock() {
	if !atomic.CompareAndSwapUint32(d.lockWord(), 0, d.pid) {
		d.lockSlow()
	}
	if atomic.LoadUint64((*uint64)(unsafe.Pointer(&d.mem[hUndo]))) != 0 {
		d.rollback()
	}
}

func (d *Dict) lockSlow() {
	w := d.lockWord()
	waiters := (*uint32)(unsafe.Pointer(&d.mem[hWaiters]))
	for i := 0; ; i++ {
		owner := atomic.LoadUint32(w)
		if owner == 0 {
			if atomic.CompareAndSwapUint32(w, 0, d.pid) {
				return
			}
			continue
		}
		if i < spins {
			continue
		}
		if i < spins+yields {
			runtime.Gosched()
			continue
		}
		if owner != d.pid && !alive(int(owner)) {
			if atomic.CompareAndSwapUint32(w, owner, d.pid) {
				return
			}
			continue
		}
		atomic.AddUint32(waiters, 1)
		futexWait(w, owner, sleepNanos)
		atomic.AddUint32(waiters, ^uint32(0))
	}
}

func (d *Dict) unlock() {
	atomic.StoreUint32(d.lockWord(), 0)
	if atomic.LoadUint32((*uint32)(unsafe.Pointer(&d.mem[hWaiters]))) != 0 {
		futexWake(d.lockWord(), 1)
	}
}

// alive reports whether process pid exists and is not a zombie (a dead
// process not yet reaped never unlocks).
func alive(pid int) bool {
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the command name, which is in parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

func futexWait(addr *uint32, val uint32, nanos int64) {
	ts := unix.NsecToTimespec(nanos)
	// FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the word is shared between
	// processes.
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), 0, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

func futexWake(addr *uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), 1, uintptr(n), 0, 0, 0)
}
