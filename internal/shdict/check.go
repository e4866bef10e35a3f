package shdict

import "fmt"

// Check walks the whole structure under the lock and reports the first
// broken invariant: every entry in its bucket and once in the LRU list,
// the lists linked both ways, and every chunk either free or in exactly
// one entry. Tests call it; it reads every chunk.
func (d *Dict) Check() (err error) {
	d.lock()
	defer d.unlock()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("shdict: %s: %v", d.name, p)
		}
	}()
	seen := make([]bool, d.nchunks)
	mark := func(c uint32, what string) error {
		if c == 0 || c >= d.nchunks {
			return fmt.Errorf("shdict: %s: %s: chunk %d out of range", d.name, what, c)
		}
		if seen[c] {
			return fmt.Errorf("shdict: %s: %s: chunk %d used twice", d.name, what, c)
		}
		seen[c] = true
		return nil
	}
	entries := 0
	for b := 0; b <= int(d.mask); b++ {
		for e := d.u32(pageBytes + b*4); e != 0; e = d.u32(d.at(e) + eHNext) {
			o := d.at(e)
			if int(d.u32(o+eHash)&d.mask) != b {
				return fmt.Errorf("shdict: %s: entry %d in bucket %d, hash says %d", d.name, e, b, d.u32(o+eHash)&d.mask)
			}
			if k := Kind(d.mem[o+eKind]); k != String && k != Number && k != Bool {
				return fmt.Errorf("shdict: %s: entry %d: bad kind %d", d.name, e, k)
			}
			n := 0
			for c := e; c != 0; c = d.u32(d.at(c) + eNext) {
				if err := mark(c, "entry"); err != nil {
					return err
				}
				n++
			}
			if n != d.nchain(e) {
				return fmt.Errorf("shdict: %s: entry %d has %d chunks, needs %d", d.name, e, n, d.nchain(e))
			}
			key := make([]byte, d.klen(e))
			k := key[:0]
			d.walk(e, 0, len(key), func(p []byte) bool { k = append(k, p...); return true })
			if hashKey(key) != d.u32(o+eHash) {
				return fmt.Errorf("shdict: %s: entry %d: key %q does not match its hash", d.name, e, key)
			}
			entries++
		}
	}
	if uint64(entries) != d.u64(hEntries) {
		return fmt.Errorf("shdict: %s: %d entries in buckets, header says %d", d.name, entries, d.u64(hEntries))
	}
	n, prev := 0, uint32(0)
	for e := d.u32(hLRUHead); e != 0; e = d.u32(d.at(e) + eLNext) {
		if n++; n > entries {
			return fmt.Errorf("shdict: %s: LRU list longer than the entries", d.name)
		}
		if d.u32(d.at(e)+ePrev) != prev {
			return fmt.Errorf("shdict: %s: LRU entry %d: back link %d, want %d", d.name, e, d.u32(d.at(e)+ePrev), prev)
		}
		prev = e
	}
	if n != entries || d.u32(hLRUTail) != prev {
		return fmt.Errorf("shdict: %s: LRU list holds %d of %d entries (tail %d, last %d)", d.name, n, entries, d.u32(hLRUTail), prev)
	}
	free := 0
	for c := d.u32(hFree); c != 0; c = d.u32(d.at(c) + eNext) {
		if err := mark(c, "free list"); err != nil {
			return err
		}
		free++
	}
	if free != int(d.u32(hNFree)) {
		return fmt.Errorf("shdict: %s: %d free chunks, header says %d", d.name, free, d.u32(hNFree))
	}
	for c := uint32(1); c < d.nchunks; c++ {
		if !seen[c] {
			return fmt.Errorf("shdict: %s: chunk %d lost (neither free nor in an entry)", d.name, c)
		}
	}
	return nil
}
