// Package scripts maps SCRIPT_FILENAME to compiled chunks: it validates the
// path (document roots, extension, file type), compiles each script once
// per worker and recompiles it when the file changes.
//
// Change detection is by inotify (watch.go): a change drops the chunk
// before the next request, and an unchanged script costs no system call.
// Where inotify cannot watch a script (no inotify, the watch limit, a
// network or FUSE filesystem), and when Config.StatInterval or
// Config.NoWatch asks for it, each request stats the file instead and
// compares mtime (nanoseconds), ctime, size, inode and device: one stat(2)
// made without allocating, or none at all while the entry is younger than
// Config.StatInterval.
package scripts

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/luabind"
)

// Config says which scripts may run and how often files are checked.
type Config struct {
	// DocRoots confine scripts: a script whose real path (symlinks
	// resolved) is outside every root is refused. Empty means anywhere.
	DocRoots []string
	// Exts are the allowed file name extensions; empty means ".lua".
	Exts []string
	// StatInterval is how long a checked entry is trusted before the file
	// is stat'ed again; 0 checks on every request. Setting it turns
	// inotify off.
	StatInterval time.Duration
	// NoWatch turns inotify off: every request stats its script.
	NoWatch bool
	// Logger says once when a script cannot be watched (nil: no log).
	Logger *slog.Logger
}

// Error is a script that cannot be served, with the HTTP status to answer.
type Error struct {
	Status int // 404, 403 or 500
	Path   string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Cache holds the compiled scripts of one Lua state.
type Cache struct {
	st      *luabind.State
	roots   []string
	exts    []string
	every   int64 // StatInterval in nanoseconds
	m       map[string]*entry
	pathbuf []byte
	stat    unix.Stat_t
	w       *watcher // nil: every script is checked with stat
	log     *slog.Logger
	warned  bool // the log said a script is not watched

	mods       map[string]*module // files require loaded (modules.go)
	modStat    int                // how many of them are checked by stat
	modChanged bool               // one of them changed: reload before the next run
}

type entry struct {
	chunk   luabind.Chunk
	dev     uint64
	ino     uint64
	size    int64
	mtime   unix.Timespec
	ctime   unix.Timespec
	checked int64 // monotonic nanoseconds of the last stat
	watched bool  // inotify reports its changes: no stat
}

// New makes an empty cache for st.
func New(st *luabind.State, cfg Config) (*Cache, error) {
	c := &Cache{st: st, every: int64(cfg.StatInterval), m: make(map[string]*entry), pathbuf: make([]byte, 0, 1024), log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, r := range cfg.DocRoots {
		abs, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("docroot %q: %w", r, err)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("docroot %q: %w", r, err)
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("docroot %q: not a directory", r)
		}
		c.roots = append(c.roots, real)
	}
	c.exts = cfg.Exts
	if len(c.exts) == 0 {
		c.exts = []string{".lua"}
	}
	for i, e := range c.exts {
		if !strings.HasPrefix(e, ".") {
			c.exts[i] = "." + e
		}
	}
	if c.every == 0 && !cfg.NoWatch {
		w, err := newWatcher()
		if err != nil {
			c.log.Warn("change detection: inotify unavailable, checking every script with stat on every request", "err", err)
			c.warned = true
		}
		c.w = w
	}
	return c, nil
}

var start = time.Now()

// atFDCWD is AT_FDCWD as a syscall argument.
var atFDCWD = func() uintptr { fd := unix.AT_FDCWD; return uintptr(fd) }()

func monotonic() int64 { return int64(time.Since(start)) }

// Lookup returns the chunk for path, compiling it on first use and again
// whenever the file has changed. Errors are *Error.
func (c *Cache) Lookup(path []byte) (luabind.Chunk, error) {
	if c.w != nil && sigios() != c.w.seen {
		c.readEvents()
	}
	if c.modChanged || c.modStat > 0 || c.st.ModulesLoaded() {
		c.checkModules()
	}
	e := c.m[string(path)]
	if e != nil && e.watched {
		return e.chunk, nil
	}
	now := monotonic()
	if e != nil && c.every > 0 && now-e.checked < c.every {
		return e.chunk, nil
	}
	if errno := c.statPath(path); errno != 0 {
		if e != nil {
			c.drop(e)
		}
		return luabind.Chunk{}, statError(string(path), errno)
	}
	if e != nil && e.same(&c.stat) {
		e.checked = now
		return e.chunk, nil
	}
	return c.load(string(path), e, now)
}

// statPath stats path into c.stat without allocating. newfstatat is the
// fstatat of every 64-bit Linux, amd64 and arm64 included, under its own
// number on each (the standard syscall package calls arm64's SYS_FSTATAT);
// 32-bit ones have only fstatat64, with another struct.
func (c *Cache) statPath(path []byte) unix.Errno {
	if len(path) == 0 || len(path) >= 4096 {
		return unix.ENOENT
	}
	c.pathbuf = append(append(c.pathbuf[:0], path...), 0)
	for _, b := range path {
		if b == 0 {
			return unix.ENOENT
		}
	}
	_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, atFDCWD,
		uintptr(unsafe.Pointer(&c.pathbuf[0])), uintptr(unsafe.Pointer(&c.stat)), 0, 0, 0)
	return errno
}

func statError(path string, errno unix.Errno) error {
	switch errno {
	case unix.ENOENT, unix.ENOTDIR, unix.ENAMETOOLONG:
		return &Error{Status: 404, Path: path, Err: fs.ErrNotExist}
	}
	return &Error{Status: 403, Path: path, Err: errno}
}

func (e *entry) same(st *unix.Stat_t) bool {
	return e.ino == st.Ino && e.dev == st.Dev && e.size == st.Size && e.mtime == st.Mtim && e.ctime == st.Ctim
}

func (c *Cache) drop(e *entry) {
	delete(c.m, e.chunk.Name())
	c.st.Unload(e.chunk)
}

// load validates, reads and compiles path; c.stat holds its fresh stat.
func (c *Cache) load(path string, old *entry, now int64) (luabind.Chunk, error) {
	if old != nil {
		c.drop(old)
	}
	st := c.stat
	if err := c.validate(path, &st); err != nil {
		return luabind.Chunk{}, err
	}
	// Watch before reading: a change made from now on drops what we read.
	watched := false
	if c.w != nil {
		if err := c.w.add(path); err == nil {
			watched = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			c.unwatched(path, err)
		}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return luabind.Chunk{}, &Error{Status: 404, Path: path, Err: err}
		}
		return luabind.Chunk{}, &Error{Status: 403, Path: path, Err: err}
	}
	chunk, err := c.st.Load(path, src, st.Mtim.Sec)
	if err != nil {
		return luabind.Chunk{}, &Error{Status: 500, Path: path, Err: err}
	}
	c.m[path] = &entry{chunk: chunk, dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim, checked: now, watched: watched}
	return chunk, nil
}

func (c *Cache) validate(path string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &Error{Status: 403, Path: path, Err: errors.New("not a regular file")}
	}
	ok := false
	for _, e := range c.exts {
		if strings.HasSuffix(path, e) {
			ok = true
			break
		}
	}
	if !ok {
		return &Error{Status: 403, Path: path, Err: errors.New("extension not allowed")}
	}
	if len(c.roots) == 0 {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return &Error{Status: 404, Path: path, Err: err}
	}
	if !filepath.IsAbs(real) {
		if real, err = filepath.Abs(real); err != nil {
			return &Error{Status: 403, Path: path, Err: err}
		}
	}
	for _, r := range c.roots {
		if real == r || strings.HasPrefix(real, r+string(filepath.Separator)) || r == "/" {
			return nil
		}
	}
	return &Error{Status: 403, Path: path, Err: errors.New("outside the document root")}
}

// Len is the number of cached scripts.
func (c *Cache) Len() int { return len(c.m) }
