// Package shdict is a dictionary in shared memory that every worker of a
// pool reads and writes: magnet.shared.NAME. magnetd creates one mapping
// per dictionary (a memfd) and passes it to its workers; the layout holds
// offsets only, never pointers, so each process may map it anywhere.
//
// The mapping is a header page, a hash table of chunk indices, and an
// array of fixed-size chunks. An entry is a chain of chunks: its first
// chunk holds the entry header (hash chain, LRU links, expiry, flags, the
// number or boolean value) followed by the key and string value bytes,
// which continue in the next chunks. Free chunks form one list, so any
// freed chunk serves any entry and evicting the least recently used entry
// always makes room.
//
// One lock guards a dictionary (lock.go): a word holding the owner's pid,
// taken with a compare-and-swap, so the common path makes no syscall.
// Every write to the structure first records the word's old value in an
// undo log in the header (undo.go); an operation that completes empties
// the log. When a process dies holding the lock, the next one takes the
// lock over and rolls the log back, so the store is as it was before the
// interrupted operation. Payload bytes are written only into chunks that
// were free when the operation began, so they need no log.
package shdict

import "unsafe"

const (
	magic   = 0x74636964_6e67616d // "magndict"
	version = 1

	pageBytes  = 4096
	chunkBytes = 64
	chunkShift = 6
	// undoCap bounds the words one operation may change.
	undoCap = 128

	// MaxKey is the longest key, as ngx.shared.DICT's.
	MaxKey = 65535
)

// Header fields: byte offsets in the first page.
const (
	hMagic     = 0   // u64
	hVersion   = 8   // u64
	hSize      = 16  // u64: the mapping's size
	hChunks    = 24  // u64: chunk count, chunk 0 unused (the nil index)
	hBuckets   = 32  // u64: hash buckets, a power of two
	hLock      = 40  // u32: the owner's pid, 0 when free
	hWaiters   = 44  // u32: processes sleeping on hLock
	hUndo      = 48  // u64: entries in the undo log
	hFree      = 56  // u32: first free chunk
	hNFree     = 60  // u32: free chunks
	hLRUHead   = 64  // u32: most recently used entry
	hLRUTail   = 68  // u32: least recently used entry
	hEntries   = 72  // u64
	hEvictions = 80  // u64: live entries evicted to make room
	hRecovered = 88  // u64: operations rolled back after their process died
	hName      = 96  // [32]byte
	hUndoLog   = 128 // undoCap entries of 16 bytes: offset|width, old value
)

// Entry header fields: byte offsets in an entry's first chunk. Offset 0 of
// every chunk is the next chunk of its chain (entry or free list).
const (
	eNext    = 0  // u32
	eHNext   = 4  // u32: next entry in the hash bucket
	ePrev    = 8  // u32: LRU neighbour towards the head
	eLNext   = 12 // u32: LRU neighbour towards the tail
	eHash    = 16 // u32
	eFlags   = 20 // u32: the user's flags
	eExpires = 24 // i64: unix milliseconds, 0 for never
	eVLen    = 32 // u32: string value length
	eKLen    = 36 // u16
	eKind    = 38 // u8
	eNum     = 40 // f64 bits: a number or boolean value
	eData    = 48 // key, then string value

	firstData = chunkBytes - eData // data bytes in the first chunk
	restData  = chunkBytes - 4     // data bytes in the other chunks
)

// chunksFor is how many chunks hold an entry with n key and value bytes.
func chunksFor(n int) int {
	if n <= firstData {
		return 1
	}
	return 1 + (n-firstData+restData-1)/restData
}

func (d *Dict) u32(off int) uint32 { return *(*uint32)(unsafe.Pointer(&d.mem[off])) }
func (d *Dict) u64(off int) uint64 { return *(*uint64)(unsafe.Pointer(&d.mem[off])) }

// chunk is the byte offset of chunk i.
func (d *Dict) chunk(i uint32) int { return d.chunkBase + int(i)<<chunkShift }

// bucket is the byte offset of the bucket for hash h.
func (d *Dict) bucket(h uint32) int { return pageBytes + int(h&d.mask)*4 }
