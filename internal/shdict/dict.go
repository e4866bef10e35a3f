package shdict

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EnvVar tells a worker which inherited fds hold which dictionaries:
// "name=fd,name=fd".
const EnvVar = "MAGNET_SHARED"

// MinSize is the smallest dictionary: the header page, buckets and a few
// chunks.
const MinSize = 3 * pageBytes

// MaxSize keeps chunk indices within 32 bits.
const MaxSize = 1 << 37

// Dict is one mapped dictionary.
type Dict struct {
	name      string
	mem       []byte
	file      *os.File
	pid       uint32
	mask      uint32
	chunkBase int
	nchunks   uint32
}

// ValidName reports whether name may name a dictionary: a Lua identifier,
// as it is used as magnet.shared.NAME.
func ValidName(name string) bool {
	if name == "" || len(name) > 31 {
		return false
	}
	for i, c := range name {
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Create makes a dictionary of size bytes in a new memfd and maps it. The
// memfd is sealed against resizing, so no worker can shrink it under the
// others.
func Create(name string, size int64) (*Dict, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("shdict: bad name %q (letters, digits and _, up to 31)", name)
	}
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("shdict: %s: size %d out of range (%d to %d bytes)", name, size, MinSize, int64(MaxSize))
	}
	size &^= pageBytes - 1
	fd, err := unix.MemfdCreate("magnet-shared-"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shdict: %s: memfd_create: %w", name, err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shdict: %s: ftruncate: %w", name, err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shdict: %s: seal memfd: %w", name, err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shdict: %s: mmap: %w", name, err)
	}
	format(mem, name)
	d, err := attach(mem)
	if err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	d.file = os.NewFile(uintptr(fd), "magnet-shared-"+name)
	return d, nil
}

// format lays out an empty dictionary in mem (zeroed).
func format(mem []byte, name string) {
	size := len(mem)
	// One bucket per four chunks, a power of two.
	approx := (size - pageBytes) / chunkBytes
	nb := 16
	for nb*4 < approx {
		nb *= 2
	}
	base := pageBytes + (nb*4+pageBytes-1)&^(pageBytes-1)
	nchunks := (size - base) / chunkBytes
	put64 := func(off int, v uint64) { *(*uint64)(unsafe.Pointer(&mem[off])) = v }
	put32 := func(off int, v uint32) { *(*uint32)(unsafe.Pointer(&mem[off])) = v }
	put64(hSize, uint64(size))
	put64(hChunks, uint64(nchunks))
	put64(hBuckets, uint64(nb))
	copy(mem[hName:hName+32], name)
	// The free list: chunks 1 to nchunks-1 in order.
	for i := 1; i < nchunks; i++ {
		next := uint32(i + 1)
		if i == nchunks-1 {
			next = 0
		}
		put32(base+i*chunkBytes+eNext, next)
	}
	put32(hFree, 1)
	put32(hNFree, uint32(nchunks-1))
	put64(hVersion, version)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[hMagic])), magic)
}

// attach checks a mapped dictionary's header.
func attach(mem []byte) (*Dict, error) {
	if len(mem) < MinSize {
		return nil, errors.New("shdict: mapping too small")
	}
	d := &Dict{mem: mem, pid: uint32(os.Getpid())}
	if atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[hMagic]))) != magic || d.u64(hVersion) != version {
		return nil, errors.New("shdict: not a magnet dictionary (bad magic or version)")
	}
	if d.u64(hSize) != uint64(len(mem)) {
		return nil, fmt.Errorf("shdict: size %d in the header, mapping is %d", d.u64(hSize), len(mem))
	}
	nb := d.u64(hBuckets)
	if nb == 0 || nb&(nb-1) != 0 {
		return nil, errors.New("shdict: bad bucket count")
	}
	d.mask = uint32(nb - 1)
	d.chunkBase = pageBytes + (int(nb)*4+pageBytes-1)&^(pageBytes-1)
	d.nchunks = uint32(d.u64(hChunks))
	if d.chunkBase+int(d.nchunks)*chunkBytes > len(mem) {
		return nil, errors.New("shdict: chunks past the mapping")
	}
	name := mem[hName : hName+32]
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		name = name[:i]
	}
	d.name = string(name)
	return d, nil
}

// Open maps the dictionary in an inherited memfd (a worker's side).
func Open(fd int) (*Dict, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shdict: fd %d: %w", fd, err)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shdict: fd %d: mmap: %w", fd, err)
	}
	d, err := attach(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	d.file = os.NewFile(uintptr(fd), "magnet-shared-"+d.name)
	return d, nil
}

// OpenFile maps the dictionary in the file at path, creating it with size
// bytes when it is new or empty. Processes that were not started by one
// master (spawn-fcgi -F N) share a dictionary this way; the file lives
// until it is removed (in /dev/shm: until reboot).
func OpenFile(path, name string, size int64) (*Dict, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("shdict: bad name %q", name)
	}
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("shdict: %s: size %d out of range (%d to %d bytes)", name, size, MinSize, int64(MaxSize))
	}
	size &^= pageBytes - 1
	// Not through a symlink, and only a file of our own: the directory
	// (/dev/shm) is everyone's.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shdict: %w", err)
	}
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("shdict: %s is not a regular file of this user", path)
	}
	// The first process to lock a new file formats it.
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("shdict: flock %s: %w", path, err)
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shdict: %w", err)
	}
	fresh := fi.Size() == 0
	if fresh {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("shdict: %w", err)
		}
	} else if fi.Size() != size {
		f.Close()
		return nil, fmt.Errorf("shdict: %s is %d bytes, %s=%d asks for %d: remove it to resize", path, fi.Size(), name, size, size)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shdict: mmap %s: %w", path, err)
	}
	if fresh {
		format(mem, name)
	}
	d, err := attach(mem)
	if err != nil {
		unix.Munmap(mem)
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d.file = f
	return d, nil
}

// Name is the dictionary's name.
func (d *Dict) Name() string { return d.name }

// File is the dictionary's memfd (or file), to pass to workers through
// exec.Cmd.ExtraFiles.
func (d *Dict) File() *os.File { return d.file }

// Close unmaps the dictionary and closes its file.
func (d *Dict) Close() error {
	err := unix.Munmap(d.mem)
	d.mem = nil
	if d.file != nil {
		if cerr := d.file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("shdict: close %s: %w", d.name, err)
	}
	return nil
}

// Env is the environment entry naming each dictionary's fd in a worker:
// dicts[i] is inherited as fd first+i.
func Env(dicts []*Dict, first int) string {
	var b strings.Builder
	b.WriteString(EnvVar + "=")
	for i, d := range dicts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(d.name + "=" + strconv.Itoa(first+i))
	}
	return b.String()
}

// FromEnv opens the dictionaries an environment value (EnvVar's) names.
func FromEnv(v string) ([]*Dict, error) {
	var dicts []*Dict
	for _, item := range strings.Split(v, ",") {
		if item == "" {
			continue
		}
		name, fdText, ok := strings.Cut(item, "=")
		fd, err := strconv.Atoi(fdText)
		if !ok || err != nil || fd < 0 {
			closeAll(dicts)
			return nil, fmt.Errorf("shdict: bad %s entry %q", EnvVar, item)
		}
		d, err := Open(fd)
		if err != nil {
			closeAll(dicts)
			return nil, err
		}
		if d.name != name {
			d.Close()
			closeAll(dicts)
			return nil, fmt.Errorf("shdict: fd %d holds %q, not %q", fd, d.name, name)
		}
		dicts = append(dicts, d)
	}
	return dicts, nil
}

func closeAll(dicts []*Dict) {
	for _, d := range dicts {
		d.Close()
	}
}

// Stats are a dictionary's figures for the status page.
type Stats struct {
	Name      string
	Capacity  uint64 // bytes of the mapping
	Used      uint64 // bytes in entries' chunks
	Entries   uint64
	Evictions uint64 // live entries evicted to make room
	Recovered uint64 // operations rolled back after their process died
}

// Stats reads the figures without the lock: each is a consistent word,
// not all of them one moment.
func (d *Dict) Stats() Stats {
	nfree := atomic.LoadUint32((*uint32)(unsafe.Pointer(&d.mem[hNFree])))
	return Stats{
		Name:      d.name,
		Capacity:  uint64(len(d.mem)),
		Used:      uint64(d.nchunks-1-nfree) * chunkBytes,
		Entries:   atomic.LoadUint64((*uint64)(unsafe.Pointer(&d.mem[hEntries]))),
		Evictions: atomic.LoadUint64((*uint64)(unsafe.Pointer(&d.mem[hEvictions]))),
		Recovered: atomic.LoadUint64((*uint64)(unsafe.Pointer(&d.mem[hRecovered]))),
	}
}
