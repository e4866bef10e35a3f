package shdict

import (
	"math"

	"unsafe"
)

// Helpers on entries. All run under the lock; those that change a live
// structure word go through set32 and set64.

func (d *Dict) at(i uint32) int {
	if i == 0 || i >= d.nchunks {
		panic("shdict: " + d.name + ": chunk index out of range (corrupt store)")
	}
	return d.chunk(i)
}

func hashKey(key []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// span returns the data bytes of chunk c of an entry, the first chunk
// being first.
func (d *Dict) span(c uint32, first bool) []byte {
	o := d.at(c)
	if first {
		return d.mem[o+eData : o+chunkBytes]
	}
	return d.mem[o+4 : o+chunkBytes]
}

// walk calls fn on consecutive pieces of the entry's data from byte off,
// n bytes in all, stopping when fn returns false.
func (d *Dict) walk(e uint32, off, n int, fn func(p []byte) bool) bool {
	c, first := e, true
	for n > 0 {
		if c == 0 {
			panic("shdict: " + d.name + ": entry chain too short (corrupt store)")
		}
		s := d.span(c, first)
		if off >= len(s) {
			off -= len(s)
		} else {
			s = s[off:]
			off = 0
			if len(s) > n {
				s = s[:n]
			}
			if !fn(s) {
				return false
			}
			n -= len(s)
		}
		c, first = d.u32(d.at(c)+eNext), false
	}
	return true
}

// keyIs compares an entry's key with key.
func (d *Dict) keyIs(e uint32, key []byte) bool {
	o := d.at(e)
	if int(*(*uint16)(unsafe.Pointer(&d.mem[o+eKLen]))) != len(key) {
		return false
	}
	if len(key) <= firstData {
		return string(d.mem[o+eData:o+eData+len(key)]) == string(key)
	}
	rest := key
	return d.walk(e, 0, len(key), func(p []byte) bool {
		ok := string(p) == string(rest[:len(p)])
		rest = rest[len(p):]
		return ok
	})
}

func (d *Dict) klen(e uint32) int {
	return int(*(*uint16)(unsafe.Pointer(&d.mem[d.at(e)+eKLen])))
}

// find returns the entry holding key, or 0.
func (d *Dict) find(key []byte, h uint32) uint32 {
	for e := d.u32(d.bucket(h)); e != 0; e = d.u32(d.at(e) + eHNext) {
		if d.u32(d.at(e)+eHash) == h && d.keyIs(e, key) {
			return e
		}
	}
	return 0
}

func (d *Dict) expired(e uint32, now int64) bool {
	x := int64(d.u64(d.at(e) + eExpires))
	return x != 0 && x <= now
}

// expiredNow is expired at the current time, read only for an entry that
// has an expiry: get and incr of entries without one skip the clock.
func (d *Dict) expiredNow(e uint32) bool {
	x := int64(d.u64(d.at(e) + eExpires))
	return x != 0 && x <= now()
}

// value reads an entry's value, a string appended to buf.
func (d *Dict) value(e uint32, buf []byte) Value {
	o := d.at(e)
	v := Value{Kind: Kind(d.mem[o+eKind]), Num: math.Float64frombits(d.u64(o + eNum))}
	if v.Kind == String {
		buf = buf[:0]
		d.walk(e, d.klen(e), int(d.u32(o+eVLen)), func(p []byte) bool {
			buf = append(buf, p...)
			return true
		})
		v.Str = buf
	}
	return v
}

func (d *Dict) nchain(e uint32) int {
	o := d.at(e)
	return chunksFor(d.klen(e) + int(d.u32(o+eVLen)))
}

// alloc takes n chunks, chained, from the free list; the caller checked
// that there are enough. They were free when the operation began, so
// their bytes (all but the chain's end) are written without a log.
func (d *Dict) alloc(n int) uint32 {
	head := d.u32(hFree)
	last := head
	for i := 1; i < n; i++ {
		last = d.u32(d.at(last) + eNext)
	}
	next := d.u32(d.at(last) + eNext)
	d.set32(d.at(last)+eNext, 0)
	d.set32(hFree, next)
	d.set32(hNFree, d.u32(hNFree)-uint32(n))
	return head
}

// release puts an entry's chain on the free list.
func (d *Dict) release(e uint32) {
	n, last := 1, e
	for c := d.u32(d.at(e) + eNext); c != 0; c = d.u32(d.at(c) + eNext) {
		last = c
		n++
	}
	d.set32(d.at(last)+eNext, d.u32(hFree))
	d.set32(hFree, e)
	d.set32(hNFree, d.u32(hNFree)+uint32(n))
}

func (d *Dict) unlinkLRU(e uint32) {
	o := d.at(e)
	prev, next := d.u32(o+ePrev), d.u32(o+eLNext)
	if prev != 0 {
		d.set32(d.at(prev)+eLNext, next)
	} else {
		d.set32(hLRUHead, next)
	}
	if next != 0 {
		d.set32(d.at(next)+ePrev, prev)
	} else {
		d.set32(hLRUTail, prev)
	}
}

// pushLRU makes e the most recently used entry; fresh says e's own links
// are in chunks the operation allocated, which need no log.
func (d *Dict) pushLRU(e uint32, fresh bool) {
	o := d.at(e)
	head := d.u32(hLRUHead)
	if fresh {
		*(*uint32)(unsafe.Pointer(&d.mem[o+ePrev])) = 0
		*(*uint32)(unsafe.Pointer(&d.mem[o+eLNext])) = head
	} else {
		d.set32(o+ePrev, 0)
		d.set32(o+eLNext, head)
	}
	if head != 0 {
		d.set32(d.at(head)+ePrev, e)
	} else {
		d.set32(hLRUTail, e)
	}
	d.set32(hLRUHead, e)
}

func (d *Dict) touch(e uint32) {
	if d.u32(hLRUHead) == e {
		return
	}
	d.unlinkLRU(e)
	d.pushLRU(e, false)
}

func (d *Dict) unlinkHash(e uint32) {
	o := d.at(e)
	next := d.u32(o + eHNext)
	b := d.bucket(d.u32(o + eHash))
	if d.u32(b) == e {
		d.set32(b, next)
		return
	}
	for p := d.u32(b); p != 0; p = d.u32(d.at(p) + eHNext) {
		if d.u32(d.at(p)+eHNext) == e {
			d.set32(d.at(p)+eHNext, next)
			return
		}
	}
	panic("shdict: " + d.name + ": entry not in its bucket (corrupt store)")
}

// remove takes an entry out and frees its chunks.
func (d *Dict) remove(e uint32) {
	d.unlinkHash(e)
	d.unlinkLRU(e)
	d.release(e)
	d.set64(hEntries, d.u64(hEntries)-1)
}

// insert makes a new entry from chunks it allocates; the caller made room.
func (d *Dict) insert(key []byte, h uint32, v Value, expires int64, flags uint32) uint32 {
	vlen := 0
	if v.Kind == String {
		vlen = len(v.Str)
	}
	e := d.alloc(chunksFor(len(key) + vlen))
	o := d.at(e)
	p32 := func(off int, x uint32) { *(*uint32)(unsafe.Pointer(&d.mem[o+off])) = x }
	p32(eHash, h)
	p32(eFlags, flags)
	*(*int64)(unsafe.Pointer(&d.mem[o+eExpires])) = expires
	p32(eVLen, uint32(vlen))
	*(*uint16)(unsafe.Pointer(&d.mem[o+eKLen])) = uint16(len(key))
	d.mem[o+eKind] = byte(v.Kind)
	*(*uint64)(unsafe.Pointer(&d.mem[o+eNum])) = math.Float64bits(v.Num)
	src := key
	d.walk(e, 0, len(key)+vlen, func(p []byte) bool {
		k := copy(p, src)
		src = src[k:]
		if k < len(p) {
			src = v.Str
			copy(p[k:], src)
			src = src[len(p)-k:]
		}
		return true
	})
	b := d.bucket(h)
	p32(eHNext, d.u32(b))
	d.set32(b, e)
	d.pushLRU(e, true)
	d.set64(hEntries, d.u64(hEntries)+1)
	return e
}

// evictOne removes the least recently used entry as an operation of its
// own, reporting whether it was still live.
func (d *Dict) evictOne(now int64) (live bool) {
	e := d.u32(hLRUTail)
	live = !d.expired(e, now)
	d.remove(e)
	if live {
		d.set64(hEvictions, d.u64(hEvictions)+1)
	}
	d.done()
	return live
}
