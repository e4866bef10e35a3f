// Package memtrim drops from a process's resident set the pages of its
// read-only file mappings, so that what start-up touched once (the init
// functions of every linked package, code a worker never runs again)
// stops counting in the process's RSS. The pages stay in the page cache,
// shared with the other workers; what the process touches again comes
// back on its next access, as a minor fault.
package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Result says what Trim dropped.
type Result struct {
	Mappings int   // mappings advised
	Bytes    int64 // their resident size before
}

// Trim advises MADV_DONTNEED on every mapping of a file that is not
// writable and holds no private (copied-on-write) page: text and read-only
// data of the executable and its shared libraries. Writable mappings and
// read-only ones with private pages (relocations made read-only after
// loading) are left alone, since for those the advice would discard data.
func Trim() (Result, error) {
	var r Result
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return r, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var vmas []vma
	var cur *vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		// A mapping's fields are "Name:" lines, its header starts with
		// its (lower-case hex) address: only headers are split.
		if c := line[0]; c < 'A' || c > 'Z' {
			v, ok := parseHeader(line)
			if !ok {
				continue
			}
			vmas = append(vmas, v)
			cur = &vmas[len(vmas)-1]
			continue
		}
		if cur == nil {
			continue
		}
		switch {
		case bytes.HasPrefix(line, []byte("Rss:")):
			cur.rss = kB(line)
		case bytes.HasPrefix(line, []byte("Anonymous:")):
			cur.anon = kB(line)
		case bytes.HasPrefix(line, []byte("Locked:")):
			cur.locked = kB(line)
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("memtrim: reading smaps: %w", err)
	}
	for _, v := range vmas {
		if !v.file || v.writable || v.anon != 0 || v.locked != 0 || v.rss == 0 {
			continue
		}
		_, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(v.start), uintptr(v.end-v.start), unix.MADV_DONTNEED)
		if e != 0 {
			continue // a mapping the kernel will not advise keeps its pages
		}
		r.Mappings++
		r.Bytes += v.rss << 10
	}
	return r, nil
}

type vma struct {
	start, end        uint64
	file, writable    bool
	rss, anon, locked int64 // kB
}

// parseHeader reads a mapping's first line:
// "start-end perms offset dev inode [path]".
func parseHeader(line []byte) (vma, bool) {
	var v vma
	f := bytes.Fields(line)
	if len(f) < 5 || len(f[1]) != 4 || bytes.HasSuffix(f[0], []byte(":")) {
		return v, false
	}
	i := bytes.IndexByte(f[0], '-')
	if i < 0 {
		return v, false
	}
	var err1, err2 error
	v.start, err1 = strconv.ParseUint(string(f[0][:i]), 16, 64)
	v.end, err2 = strconv.ParseUint(string(f[0][i+1:]), 16, 64)
	if err1 != nil || err2 != nil {
		return v, false
	}
	v.writable = f[1][1] == 'w'
	v.file = string(f[4]) != "0" && len(f) >= 6 && f[5][0] == '/'
	return v, true
}

// kB reads the number of a "Name:   123 kB" line.
func kB(line []byte) int64 {
	var n int64
	i := bytes.IndexByte(line, ':') + 1
	for i < len(line) && line[i] == ' ' {
		i++
	}
	for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		n = n*10 + int64(line[i]-'0')
	}
	return n
}
