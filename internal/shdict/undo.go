package shdict

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// The undo log: before an operation changes a word of the structure, it
// appends the word's offset and old value to the log in the header, and
// only then stores the new value. done empties the log once the operation
// is whole. A process that takes the lock over from a dead owner finds the
// log not empty and restores the old values, newest first; rolling back
// twice (the restorer dying too) gives the same result.

const width32 = 1 << 63 // in a log entry's offset: the word is 32 bits

func (d *Dict) undoLen() *uint64 { return (*uint64)(unsafe.Pointer(&d.mem[hUndo])) }

func (d *Dict) log(off, old uint64) {
	n := *d.undoLen()
	if n >= undoCap {
		panic(fmt.Sprintf("shdict: %s: operation changes more than %d words", d.name, undoCap))
	}
	e := hUndoLog + int(n)*16
	*(*uint64)(unsafe.Pointer(&d.mem[e])) = off
	*(*uint64)(unsafe.Pointer(&d.mem[e+8])) = old
	atomic.StoreUint64(d.undoLen(), n+1)
}

// set32 and set64 change a word of the structure, logging it first.
func (d *Dict) set32(off int, v uint32) {
	p := (*uint32)(unsafe.Pointer(&d.mem[off]))
	d.log(uint64(off)|width32, uint64(*p))
	atomic.StoreUint32(p, v)
}

func (d *Dict) set64(off int, v uint64) {
	p := (*uint64)(unsafe.Pointer(&d.mem[off]))
	d.log(uint64(off), *p)
	atomic.StoreUint64(p, v)
}

// done marks the running operation whole.
func (d *Dict) done() { atomic.StoreUint64(d.undoLen(), 0) }

// rollback undoes the operation a dead owner left unfinished.
func (d *Dict) rollback() {
	n := int(*d.undoLen())
	if n > undoCap {
		n = undoCap
	}
	for i := n - 1; i >= 0; i-- {
		e := hUndoLog + i*16
		off := *(*uint64)(unsafe.Pointer(&d.mem[e]))
		old := *(*uint64)(unsafe.Pointer(&d.mem[e+8]))
		o := int(off &^ width32)
		if o < 0 || o+8 > len(d.mem) || (o >= hLock && o < hFree) || (o >= hUndoLog && o < hUndoLog+undoCap*16) {
			continue // not a word the log may name
		}
		if off&width32 != 0 {
			atomic.StoreUint32((*uint32)(unsafe.Pointer(&d.mem[o])), uint32(old))
		} else {
			atomic.StoreUint64((*uint64)(unsafe.Pointer(&d.mem[o])), old)
		}
	}
	d.done()
	atomic.AddUint64((*uint64)(unsafe.Pointer(&d.mem[hRecovered])), 1)
}
