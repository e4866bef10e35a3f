package scripts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Change detection with inotify.
//
// Each cached script is watched along the whole path that names it: every
// directory on the way for the one name looked up in it (so a rename over
// the file, a deletion, a re-creation, a symlink or directory swapped in
// are seen), symlinks followed as the kernel does, and the file itself
// for writes and attribute changes. Any event for a script drops its
// chunk, whatever the timestamps say.
//
// The inotify descriptor is in O_ASYNC mode: the kernel sends SIGIO while
// it queues an event, inside the system call that made the change. Bound
// to the serving thread (BindThread), the signal is pending on that thread
// before the change's system call returns, and the thread takes it, and
// its handler counts it, before any later system call of its own returns.
// So when a file is written before a request is sent, the read that
// brings the request is followed by a Lookup that sees the count moved and
// reads the events first. An unchanged script costs a memory load.

const (
	fileMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_DONT_FOLLOW
	dirMask  = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW
)

// Seams for tests: the failures of inotify and of filesystems without
// events cannot be had on demand.
var (
	inotifyInit = func() (int, error) { return unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC) }
	addWatch    = unix.InotifyAddWatch
	fsType      = func(path string) (int64, error) {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		return int64(st.Type), err
	}
)

// noEvents names the filesystems whose changes inotify does not report
// (changes made by other hosts, or by a FUSE daemon, make no event here).
func noEvents(fstype int64) string {
	switch fstype {
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	case unix.SMB_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC:
		return "smb"
	case unix.FUSE_SUPER_MAGIC:
		return "fuse"
	case unix.V9FS_MAGIC:
		return "9p"
	case unix.CEPH_SUPER_MAGIC:
		return "ceph"
	case unix.CODA_SUPER_MAGIC:
		return "coda"
	case unix.AFS_FS_MAGIC, unix.AFS_SUPER_MAGIC:
		return "afs"
	case 0x01161970:
		return "gfs2"
	case 0x7461636f:
		return "ocfs2"
	}
	return ""
}

// F_SETOWN_EX owner types (fcntl(2)).
const (
	fOwnerTID = 0
	fOwnerPID = 1
)

// watcher is one cache's inotify descriptor and what its watches stand for.
type watcher struct {
	fd   int
	seen uint32 // sigios() when the events were last read
	wds  map[int32]*watch
	buf  []byte
}

// watch is one inotify watch: the scripts depending on each name in a
// watched directory, or on the watched file itself (name "").
type watch struct {
	names map[string][]string
}

func newWatcher() (*watcher, error) {
	if err := installSIGIO(); err != nil {
		return nil, err
	}
	fd, err := inotifyInit()
	if err != nil {
		return nil, fmt.Errorf("inotify_init: %w", err)
	}
	w := &watcher{fd: fd, wds: make(map[int32]*watch), buf: make([]byte, 16<<10)}
	if err := w.own(fOwnerPID, unix.Getpid()); err != nil {
		unix.Close(fd)
		return nil, err
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_ASYNC)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify O_ASYNC: %w", err)
	}
	w.seen = sigios()
	return w, nil
}

// own directs the descriptor's SIGIO to a thread or a process.
func (w *watcher) own(typ, id int) error {
	owner := struct{ typ, pid int32 }{int32(typ), int32(id)}
	_, _, errno := unix.Syscall(unix.SYS_FCNTL, uintptr(w.fd), unix.F_SETOWN_EX, uintptr(unsafe.Pointer(&owner)))
	if errno != 0 {
		return fmt.Errorf("inotify F_SETOWN_EX: %w", errno)
	}
	return nil
}

// add watches what script's content depends on, following the path one
// name at a time as the kernel does.
func (w *watcher) add(script string) error {
	p, err := filepath.Abs(script)
	if err != nil {
		return err
	}
	todo := strings.Split(p, "/")
	dir := "/"
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			dir = filepath.Dir(dir)
			continue
		}
		if err := w.watch(dir, name, dirMask, script); err != nil {
			return err
		}
		next := filepath.Join(dir, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			dir = next
			continue
		}
		if links++; links > 40 {
			return &os.PathError{Op: "watch", Path: script, Err: unix.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return err
		}
		if filepath.IsAbs(target) {
			dir = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return w.watch(dir, "", fileMask, script)
}

// watch adds path to the inotify set and notes that script depends on
// name in it.
func (w *watcher) watch(path, name string, mask uint32, script string) error {
	t, err := fsType(path)
	if err != nil {
		return err
	}
	if fs := noEvents(t); fs != "" {
		return fmt.Errorf("%s: on %s, which has no change events", path, fs)
	}
	wd, err := addWatch(w.fd, path, mask)
	if err != nil {
		return fmt.Errorf("inotify_add_watch %s: %w", path, err)
	}
	wt := w.wds[int32(wd)]
	if wt == nil {
		wt = &watch{names: make(map[string][]string)}
		w.wds[int32(wd)] = wt
	}
	for _, s := range wt.names[name] {
		if s == script {
			return nil
		}
	}
	wt.names[name] = append(wt.names[name], script)
	return nil
}

// readEvents drops the scripts that the queued events concern.
func (c *Cache) readEvents() {
	w := c.w
	w.seen = sigios() // an event queued from now on counts again
	for {
		n, err := unix.Read(w.fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return // EAGAIN: all read
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			name := w.buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			if i := indexNUL(name); i >= 0 {
				name = name[:i]
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			c.event(ev.Wd, ev.Mask, name)
		}
	}
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

func (c *Cache) event(wd int32, mask uint32, name []byte) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		for _, e := range c.m {
			c.drop(e)
		}
		c.modChanged = c.mods != nil
		return
	}
	wt := c.w.wds[wd]
	if wt == nil {
		return
	}
	if len(name) > 0 {
		c.dropPaths(wt.names[string(name)])
	} else {
		for _, paths := range wt.names {
			c.dropPaths(paths)
		}
	}
	if mask&unix.IN_IGNORED != 0 {
		delete(c.w.wds, wd) // the watch is gone: its file was deleted
	}
}

func (c *Cache) dropPaths(paths []string) {
	for _, p := range paths {
		if e := c.m[p]; e != nil {
			c.drop(e)
		}
		if c.mods != nil {
			c.moduleEvent(p)
		}
	}
}

// unwatched notes that path's changes are found by stat, and says so in
// the log for the first such script.
func (c *Cache) unwatched(path string, err error) {
	if c.warned {
		return
	}
	c.warned = true
	c.log.Warn("change detection: inotify cannot watch a script, checking it (and any other such) with stat on every request",
		"script", path, "err", err)
}

// BindThread directs change notifications to the calling OS thread, which
// must be locked to its goroutine (runtime.LockOSThread) and be the one
// that calls Lookup. Then a change completed before a request was sent is
// seen by that request's Lookup. Unbound, the signal goes to any thread of
// the process, and a change is seen a moment after it is made.
func (c *Cache) BindThread() error {
	if c.w == nil {
		return nil
	}
	return c.w.own(fOwnerTID, unix.Gettid())
}

// Close releases the inotify descriptor; the cache no longer sees changes
// made after it.
func (c *Cache) Close() {
	if c != nil && c.w != nil {
		unix.Close(c.w.fd)
		c.w = nil
	}
}

// StatChecked is the number of cached scripts whose changes are found by
// stat(2) (per request, or per StatInterval) rather than by inotify: all of
// them when watching is off, else those inotify could not watch.
func (c *Cache) StatChecked() int {
	n := 0
	for _, e := range c.m {
		if !e.watched {
			n++
		}
	}
	return n
}
