package shdict

import (
	"errors"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// Kind is the type of a stored value.
type Kind uint8

// The kinds of values, as Lua's.
const (
	Nil Kind = iota
	String
	Number
	Bool
)

// Value is a stored value: Str for a String, Num for a Number, Num != 0 for
// a Bool.
type Value struct {
	Kind Kind
	Num  float64
	Str  []byte
}

// The errors, worded as ngx.shared.DICT's.
var (
	ErrEmptyKey   = errors.New("empty key")
	ErrKeyTooLong = errors.New("key too long")
	ErrExists     = errors.New("exists")
	ErrNotFound   = errors.New("not found")
	ErrNoMemory   = errors.New("no memory")
	ErrNotNumber  = errors.New("not a number")
)

func checkKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > MaxKey {
		return ErrKeyTooLong
	}
	return nil
}

func now() int64 { return time.Now().UnixMilli() }

func expiry(now int64, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	ms := int64(ttl / time.Millisecond)
	if ms == 0 {
		ms = 1
	}
	return now + ms
}

// Get returns key's value (a string appended to buf[:0]) and flags; ok is
// false when the key is missing or expired. A hit makes the entry the most
// recently used.
func (d *Dict) Get(key, buf []byte) (v Value, flags uint32, ok bool, err error) {
	if err := checkKey(key); err != nil {
		return Value{}, 0, false, err
	}
	h := hashKey(key)
	d.lock()
	defer d.unlock()
	e := d.find(key, h)
	if e == 0 {
		return Value{}, 0, false, nil
	}
	if d.expiredNow(e) {
		d.remove(e)
		d.done()
		return Value{}, 0, false, nil
	}
	v = d.value(e, buf)
	flags = d.u32(d.at(e) + eFlags)
	d.touch(e)
	d.done()
	return v, flags, true, nil
}

// Mode says what Store does with a key that exists or not.
type Mode uint8

// The modes of Store: set, add (only a missing key), replace (only an
// existing key), safe set (set without evicting live entries).
const (
	Set Mode = iota
	Add
	Replace
	SafeSet
	SafeAdd
)

// Store sets key to v (a Nil value deletes it) with a time to live (0:
// none) and flags, as ngx.shared.DICT's set, add and replace. forcible
// reports that live entries were evicted to make room.
func (d *Dict) Store(key []byte, v Value, ttl time.Duration, flags uint32, mode Mode) (forcible bool, err error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	vlen := 0
	if v.Kind == String {
		vlen = len(v.Str)
	}
	need := chunksFor(len(key) + vlen)
	if need > int(d.nchunks)-1 || vlen > math.MaxUint32 {
		return false, ErrNoMemory
	}
	h := hashKey(key)
	t := now()
	d.lock()
	defer d.unlock()
	e := d.find(key, h)
	live := e != 0 && !d.expired(e, t)
	switch {
	case (mode == Add || mode == SafeAdd) && live:
		return false, ErrExists
	case mode == Replace && !live:
		return false, ErrNotFound
	}
	if v.Kind == Nil {
		if e != 0 {
			d.remove(e)
			d.done()
		}
		return false, nil
	}
	for int(d.u32(hNFree)) < need {
		if (mode == SafeSet || mode == SafeAdd) && !d.expired(d.u32(hLRUTail), t) {
			return false, ErrNoMemory
		}
		if d.u32(hLRUTail) == e {
			e = 0 // the old entry itself goes
		}
		if d.evictOne(t) {
			forcible = true
		}
	}
	if e != 0 {
		// Allocate first: the new chunks must not be the old entry's,
		// whose bytes a rollback would need.
		d.insert(key, h, v, expiry(t, ttl), flags)
		d.remove(e)
	} else {
		d.insert(key, h, v, expiry(t, ttl), flags)
	}
	d.done()
	return forcible, nil
}

// Delete removes key.
func (d *Dict) Delete(key []byte) error {
	_, err := d.Store(key, Value{}, 0, 0, Set)
	return err
}

// Incr adds n to key's number. A missing key fails with ErrNotFound
// unless init is given (hasInit): then it is stored as init+n with initTTL.
func (d *Dict) Incr(key []byte, n float64, hasInit bool, init float64, initTTL time.Duration) (v float64, forcible bool, err error) {
	if err := checkKey(key); err != nil {
		return 0, false, err
	}
	h := hashKey(key)
	d.lock()
	e := d.find(key, h)
	if e != 0 && !d.expiredNow(e) {
		defer d.unlock()
		o := d.at(e)
		if Kind(d.mem[o+eKind]) != Number {
			return 0, false, ErrNotNumber
		}
		v = math.Float64frombits(d.u64(o+eNum)) + n
		if d.u32(hLRUHead) != e {
			d.touch(e)
			d.done()
		}
		// One aligned word, stored whole or not at all: it needs no log.
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&d.mem[o+eNum])), math.Float64bits(v))
		return v, false, nil
	}
	d.unlock()
	if !hasInit {
		return 0, false, ErrNotFound
	}
	// Another process may add the key meanwhile: add, and retry on exists.
	for {
		v = init + n
		forcible, err = d.Store(key, Value{Kind: Number, Num: v}, initTTL, 0, Add)
		if err != ErrExists {
			return v, forcible, err
		}
		if v, forcible, err = d.Incr(key, n, false, 0, 0); err != ErrNotFound {
			return v, forcible, err
		}
	}
}

// TTL is key's remaining time to live, 0 for none.
func (d *Dict) TTL(key []byte) (time.Duration, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	h := hashKey(key)
	t := now()
	d.lock()
	defer d.unlock()
	e := d.find(key, h)
	if e == 0 || d.expired(e, t) {
		return 0, ErrNotFound
	}
	x := int64(d.u64(d.at(e) + eExpires))
	if x == 0 {
		return 0, nil
	}
	return time.Duration(x-t) * time.Millisecond, nil
}

// Expire sets key's time to live (0: none).
func (d *Dict) Expire(key []byte, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	h := hashKey(key)
	t := now()
	d.lock()
	defer d.unlock()
	e := d.find(key, h)
	if e == 0 || d.expired(e, t) {
		return ErrNotFound
	}
	d.set64(d.at(e)+eExpires, uint64(expiry(t, ttl)))
	d.done()
	return nil
}

// Keys calls fn with each live key, most recently used first, up to max
// keys (0: all). fn runs under the lock and must not use the dictionary;
// the key is valid only during the call.
func (d *Dict) Keys(max int, fn func(key []byte)) {
	t := now()
	var buf [256]byte
	d.lock()
	defer d.unlock()
	n := 0
	for e := d.u32(hLRUHead); e != 0 && (max <= 0 || n < max); e = d.u32(d.at(e) + eLNext) {
		if d.expired(e, t) {
			continue
		}
		k := buf[:0]
		d.walk(e, 0, d.klen(e), func(p []byte) bool {
			k = append(k, p...)
			return true
		})
		fn(k)
		n++
	}
}

// FlushAll removes every entry.
func (d *Dict) FlushAll() {
	d.lock()
	defer d.unlock()
	for e := d.u32(hLRUHead); e != 0; e = d.u32(hLRUHead) {
		d.remove(e)
		d.done()
	}
}

// FlushExpired removes expired entries, up to max (0: all), and returns
// how many it removed.
func (d *Dict) FlushExpired(max int) int {
	t := now()
	d.lock()
	defer d.unlock()
	n := 0
	for e := d.u32(hLRUTail); e != 0 && (max <= 0 || n < max); {
		prev := d.u32(d.at(e) + ePrev)
		if d.expired(e, t) {
			d.remove(e)
			d.done()
			n++
		}
		e = prev
	}
	return n
}

// Capacity is the dictionary's size in bytes.
func (d *Dict) Capacity() int { return len(d.mem) }

// FreeSpace is how many bytes the free chunks hold.
func (d *Dict) FreeSpace() int {
	return int(*(*uint32)(unsafe.Pointer(&d.mem[hNFree]))) * chunkBytes
}
