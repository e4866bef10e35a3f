package memtrim

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const size = 16 << 12

// mapFile maps a file of size bytes of 'a' MAP_PRIVATE with prot.
func mapFile(t *testing.T, prot int) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, bytes.Repeat([]byte("a"), size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// resident is the Rss of the mapping that starts at b, in kB.
func resident(t *testing.T, b []byte) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := uint64(uintptr(unsafe.Pointer(&b[0])))
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := parseHeader(sc.Bytes()); ok {
			in = v.start == start
			continue
		}
		if in && bytes.HasPrefix(sc.Bytes(), []byte("Rss:")) {
			return kB(sc.Bytes())
		}
	}
	t.Fatalf("no mapping at %#x", start)
	return 0
}

func touch(b []byte) (sum int) {
	for i := 0; i < len(b); i += 4096 {
		sum += int(b[i])
	}
	return sum
}

// A read-only file mapping leaves the resident set and reads the same
// afterwards.
func TestTrimDropsReadOnlyFilePages(t *testing.T) {
	b := mapFile(t, unix.PROT_READ)
	want := touch(b)
	if resident(t, b) == 0 {
		t.Fatal("the mapping is not resident after reading it")
	}
	r, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mappings < 2 || r.Bytes == 0 {
		t.Errorf("Trim dropped %d mappings, %d bytes; want this binary's text and the test's file at least", r.Mappings, r.Bytes)
	}
	if n := resident(t, b); n != 0 {
		t.Errorf("%d kB of the read-only mapping still resident", n)
	}
	if got := touch(b); got != want || b[size-1] != 'a' {
		t.Errorf("the mapping reads differently after Trim")
	}
}

// Pages a process changed are private copies: Trim must keep them, in a
// writable mapping and in one made read-only after the change (as the
// dynamic loader does with relocations).
func TestTrimKeepsChangedPages(t *testing.T) {
	rw := mapFile(t, unix.PROT_READ|unix.PROT_WRITE)
	rw[0] = 'b'
	ro := mapFile(t, unix.PROT_READ|unix.PROT_WRITE)
	ro[0] = 'c'
	if err := unix.Mprotect(ro, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if _, err := Trim(); err != nil {
		t.Fatal(err)
	}
	if rw[0] != 'b' || ro[0] != 'c' {
		t.Errorf("changed pages lost: %q %q", rw[0], ro[0])
	}
}

func TestParseHeader(t *testing.T) {
	for _, c := range []struct {
		line        string
		ok, file, w bool
		start, end  uint64
	}{
		{"00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon", true, true, false, 0x400000, 0x452000},
		{"00e03000-00e24000 rw-p 00000000 00:00 0           [heap]", true, false, true, 0xe03000, 0xe24000},
		{"7fff5e2b9000-7fff5e2bb000 r-xp 00000000 00:00 0   [vdso]", true, false, false, 0x7fff5e2b9000, 0x7fff5e2bb000},
		{"7f1c3b200000-7f1c3b400000 rw-p 00000000 00:00 0 ", true, false, true, 0x7f1c3b200000, 0x7f1c3b400000},
		{"Rss:                 892 kB", false, false, false, 0, 0},
		{"VmFlags: rd ex mr mw me dw", false, false, false, 0, 0},
	} {
		v, ok := parseHeader([]byte(c.line))
		if ok != c.ok || ok && (v.file != c.file || v.writable != c.w || v.start != c.start || v.end != c.end) {
			t.Errorf("parseHeader(%q) = %+v, %v", c.line, v, ok)
		}
	}
}

func TestKB(t *testing.T) {
	for line, want := range map[string]int64{"Rss:                 892 kB": 892, "Anonymous:             0 kB": 0, "Locked: 12 kB": 12, "Bad:": 0} {
		if got := kB([]byte(line)); got != want {
			t.Errorf("kB(%q) = %d, want %d", line, got, want)
		}
	}
}

// Trim reads smaps without making much garbage: it runs in every worker.
func TestTrimAllocs(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := Trim(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
		t.Errorf("Trim allocated %d bytes", n)
	}
}
