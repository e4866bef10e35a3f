package scripts

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/luabind"
)

// output looks path up and runs it: what the next request would get.
func output(t *testing.T, c *Cache, path string) string {
	t.Helper()
	chunk, err := c.Lookup([]byte(path))
	if err != nil {
		return err.Error()
	}
	if err := c.st.Run(chunk, &luabind.Request{}); err != nil {
		t.Fatalf("run %s: %v", path, err)
	}
	return string(c.st.Output())
}

func src(v string) string { return `io.write("` + v + `")` }

// expect checks that the next request runs want, and that no cached
// script is left to stat.
func expect(t *testing.T, c *Cache, path, want string) {
	t.Helper()
	if got := output(t, c, path); got != want {
		t.Fatalf("%s: got %q, want %q", path, got, want)
	}
	if n := c.StatChecked(); n != 0 {
		t.Fatalf("%d scripts checked with stat, want 0", n)
	}
}

// replace writes a new file and renames it over path, as editors do.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// relink points the symlink path at target atomically, as ln -sfn does.
func relink(t *testing.T, target, path string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchEdits(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, Config{DocRoots: []string{dir}})
	if c.w == nil {
		t.Fatal("inotify is off")
	}
	p := filepath.Join(dir, "a.lua")
	write(t, p, src("v1"))
	expect(t, c, p, "v1")
	expect(t, c, p, "v1")

	// two rewrites of the same size with the same mtime: only the events tell
	mtime := time.Unix(1700000000, 0)
	for _, v := range []string{"v2", "v3"} {
		write(t, p, src(v))
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		expect(t, c, p, v)
	}

	replace(t, p, src("v4"))
	expect(t, c, p, "v4")

	other := filepath.Join(t.TempDir(), "b.lua")
	write(t, other, src("v5"))
	if out, err := exec.Command("cp", other, p).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	expect(t, c, p, "v5")

	os.Remove(p)
	if got := output(t, c, p); !strings.Contains(got, "no such file") && !strings.Contains(got, "not exist") {
		t.Fatalf("deleted script: %q", got)
	}
	write(t, p, src("v6"))
	expect(t, c, p, "v6")

	if out, err := exec.Command("touch", p).CombinedOutput(); err != nil {
		t.Fatalf("touch: %v %s", err, out)
	}
	expect(t, c, p, "v6")
}

func TestWatchSymlinks(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"v1", "v2", "shared"} {
		os.Mkdir(filepath.Join(base, d), 0o755)
	}
	write(t, filepath.Join(base, "v1", "x.lua"), src("release1"))
	write(t, filepath.Join(base, "v2", "x.lua"), src("release2"))
	write(t, filepath.Join(base, "shared", "a.lua"), src("a"))
	write(t, filepath.Join(base, "shared", "b.lua"), src("b"))
	docroot := filepath.Join(base, "www")
	relink(t, "v1", docroot) // a symlinked docroot, relative
	os.Symlink(filepath.Join(base, "shared", "a.lua"), filepath.Join(base, "v1", "s.lua"))
	os.Symlink(filepath.Join(base, "shared", "a.lua"), filepath.Join(base, "v2", "s.lua"))

	c := newCache(t, Config{DocRoots: []string{base}})
	x := filepath.Join(docroot, "x.lua")
	s := filepath.Join(docroot, "s.lua")
	expect(t, c, x, "release1")
	expect(t, c, s, "a")

	// the file behind the symlinked directory changes
	write(t, filepath.Join(base, "v1", "x.lua"), src("release1b"))
	expect(t, c, x, "release1b")
	// the file behind the script's own symlink changes, by rename
	replace(t, filepath.Join(base, "shared", "a.lua"), src("a2"))
	expect(t, c, s, "a2")
	// the script's symlink points elsewhere
	relink(t, filepath.Join(base, "shared", "b.lua"), filepath.Join(base, "v1", "s.lua"))
	expect(t, c, s, "b")
	// the docroot symlink points at the next release
	relink(t, "v2", docroot)
	expect(t, c, x, "release2")
	expect(t, c, s, "a2")
	// a directory on the way is renamed and another takes its name
	if err := os.Rename(filepath.Join(base, "v2"), filepath.Join(base, "v2.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, "v1"), filepath.Join(base, "v2")); err != nil {
		t.Fatal(err)
	}
	expect(t, c, x, "release1b")
}

// logBuffer is a logger whose output the test reads.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// fallback checks a cache whose scripts cannot be watched: they are
// counted, stat'ed, and the log says so once.
func fallback(t *testing.T, c *Cache, dir string, log *bytes.Buffer) {
	t.Helper()
	a, b := filepath.Join(dir, "a.lua"), filepath.Join(dir, "b.lua")
	write(t, a, src("a1"))
	write(t, b, src("b1"))
	if got := output(t, c, a) + output(t, c, b); got != "a1b1" {
		t.Fatalf("got %q", got)
	}
	if n := c.StatChecked(); n != 2 {
		t.Fatalf("StatChecked = %d, want 2", n)
	}
	write(t, a, src("a22")) // another size: stat sees it
	if got := output(t, c, a); got != "a22" {
		t.Fatalf("change not seen by stat: %q", got)
	}
	if n := strings.Count(log.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, log)
	}
}

func TestWatchLimitFallback(t *testing.T) {
	defer func(f func(int, string, uint32) (int, error)) { addWatch = f }(addWatch)
	addWatch = func(int, string, uint32) (int, error) { return -1, unix.ENOSPC }
	dir := t.TempDir()
	log, buf := logBuffer()
	c := newCache(t, Config{Logger: log})
	fallback(t, c, dir, buf)
	if !strings.Contains(buf.String(), "no space left") {
		t.Fatalf("log does not say why: %s", buf)
	}
}

func TestWatchNoEventsFallback(t *testing.T) {
	defer func(f func(string) (int64, error)) { fsType = f }(fsType)
	fsType = func(string) (int64, error) { return unix.NFS_SUPER_MAGIC, nil }
	log, buf := logBuffer()
	c := newCache(t, Config{Logger: log})
	fallback(t, c, t.TempDir(), buf)
	if !strings.Contains(buf.String(), "nfs") {
		t.Fatalf("log does not say why: %s", buf)
	}
}

func TestWatchInitFallback(t *testing.T) {
	defer func(f func() (int, error)) { inotifyInit = f }(inotifyInit)
	inotifyInit = func() (int, error) { return -1, unix.EMFILE }
	log, buf := logBuffer()
	c := newCache(t, Config{Logger: log})
	if c.w != nil {
		t.Fatal("watching without inotify")
	}
	fallback(t, c, t.TempDir(), buf)
}

// TestWatchRealLimit lowers the kernel's watch limit for a moment (root
// only) and checks the fallback on a real ENOSPC.
func TestWatchRealLimit(t *testing.T) {
	const limit = "/proc/sys/fs/inotify/max_user_watches"
	old, err := os.ReadFile(limit)
	if err != nil || unix.Access(limit, unix.W_OK) != nil {
		t.Skip("cannot change", limit)
	}
	dir := t.TempDir()
	log, buf := logBuffer()
	c := newCache(t, Config{Logger: log})
	a, b := filepath.Join(dir, "a.lua"), filepath.Join(dir, "b.lua")
	write(t, a, src("a1"))
	write(t, b, src("b1"))
	if err := os.WriteFile(limit, []byte("0"), 0); err != nil {
		t.Skip("cannot change", limit, err)
	}
	_, errA := c.Lookup([]byte(a))
	_, errB := c.Lookup([]byte(b))
	if err := os.WriteFile(limit, old, 0); err != nil {
		t.Fatalf("restoring %s to %s: %v", limit, old, err)
	}
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if n := c.StatChecked(); n != 2 {
		t.Fatalf("StatChecked = %d, want 2 (%s)", n, buf)
	}
	if !strings.Contains(buf.String(), "no space left") {
		t.Fatalf("log: %s", buf)
	}
	write(t, a, src("a22"))
	if got := output(t, c, a); got != "a22" {
		t.Fatalf("change not seen by stat: %q", got)
	}
}

// TestWatchOff: with a stat interval, or NoWatch, no inotify at all.
func TestWatchOff(t *testing.T) {
	for _, cfg := range []Config{{StatInterval: time.Second}, {NoWatch: true}} {
		c := newCache(t, cfg)
		if c.w != nil {
			t.Fatalf("%+v: watching", cfg)
		}
	}
}

// TestWatchOverflow: a lost event queue drops every chunk.
func TestWatchOverflow(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, Config{})
	p := filepath.Join(dir, "a.lua")
	write(t, p, src("v1"))
	expect(t, c, p, "v1")
	c.event(-1, unix.IN_Q_OVERFLOW, nil)
	if c.Len() != 0 {
		t.Fatal("overflow kept a chunk")
	}
	expect(t, c, p, "v1")
}
