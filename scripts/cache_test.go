package scripts

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/luabind"
)

// newCache makes a cache bound to the test's thread, as a worker's is to
// its serving thread.
func newCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	st, err := luabind.NewState()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	c, err := New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	if err := c.BindThread(); err != nil {
		t.Fatal(err)
	}
	return c
}

func write(t testing.TB, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestChangeDetection(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, Config{})
	p := filepath.Join(dir, "a.lua")
	write(t, p, "return 1")
	first, err := c.Lookup([]byte(p))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := c.Lookup([]byte(p))
	if same != first {
		t.Fatal("unchanged file was recompiled")
	}
	// two rewrites within one second, same size: mtime nanoseconds/ctime differ
	write(t, p, "return 2")
	second, _ := c.Lookup([]byte(p))
	write(t, p, "return 3")
	third, _ := c.Lookup([]byte(p))
	if second == first || third == second {
		t.Fatal("a rewrite was not seen")
	}
	// replaced by rename: new inode
	tmp := filepath.Join(dir, "tmp")
	write(t, tmp, "return 4")
	os.Rename(tmp, p)
	if fourth, _ := c.Lookup([]byte(p)); fourth == third {
		t.Fatal("a replaced file was not seen")
	}
	os.Remove(p)
	if _, err := c.Lookup([]byte(p)); status(err) != 404 {
		t.Fatalf("removed file: %v", err)
	}
	if c.Len() != 0 {
		t.Fatal("removed file stayed cached")
	}
}

func TestStatInterval(t *testing.T) {
	dir := t.TempDir()
	c := newCache(t, Config{StatInterval: time.Hour})
	p := filepath.Join(dir, "a.lua")
	write(t, p, "return 1")
	first, _ := c.Lookup([]byte(p))
	write(t, p, "return 22")
	if again, _ := c.Lookup([]byte(p)); again != first {
		t.Fatal("stat-interval entry was re-checked early")
	}
	c.every = 1 // the interval passes
	if again, _ := c.Lookup([]byte(p)); again == first {
		t.Fatal("change not seen after the interval")
	}
}

func TestRefusals(t *testing.T) {
	root := t.TempDir()
	out := t.TempDir()
	c := newCache(t, Config{DocRoots: []string{root}})
	write(t, filepath.Join(root, "ok.lua"), "return 1")
	write(t, filepath.Join(root, "bad.lua"), "return (")
	write(t, filepath.Join(root, "x.txt"), "return 1")
	write(t, filepath.Join(out, "o.lua"), "return 1")
	os.Symlink(filepath.Join(out, "o.lua"), filepath.Join(root, "escape.lua"))
	os.Symlink(filepath.Join(root, "ok.lua"), filepath.Join(root, "inside.lua"))
	os.Mkdir(filepath.Join(root, "dir.lua"), 0o755)
	cases := map[string]int{
		"ok.lua": 0, "inside.lua": 0, "bad.lua": 500, "x.txt": 403, "escape.lua": 403, "dir.lua": 403, "none.lua": 404,
		"../" + filepath.Base(out) + "/o.lua": 403,
	}
	for name, want := range cases {
		_, err := c.Lookup([]byte(filepath.Join(root, name)))
		if status(err) != want {
			t.Errorf("%s: got %v, want status %d", name, err, want)
		}
	}
	if _, err := c.Lookup([]byte("/etc/passwd\x00.lua")); status(err) != 404 {
		t.Errorf("NUL in path: %v", err)
	}
}

// BenchmarkLookupHit is the per-request change check of a watched
// script: a memory load.
func BenchmarkLookupHit(b *testing.B) { benchmarkLookupHit(b, Config{}) }

// BenchmarkLookupHitStat is the per-request check of a script inotify
// cannot watch: one stat.
func BenchmarkLookupHitStat(b *testing.B) { benchmarkLookupHit(b, Config{NoWatch: true}) }

func benchmarkLookupHit(b *testing.B, cfg Config) {
	dir := b.TempDir()
	c := newCache(b, cfg)
	p := []byte(filepath.Join(dir, "a.lua"))
	write(b, string(p), "return 1")
	c.Lookup(p)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Lookup(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReload140 is a changed 140-line script seen, read, recompiled
// and watched again.
func BenchmarkReload140(b *testing.B) {
	src, err := os.ReadFile("../luabind/testdata/template.lua")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	c := newCache(b, Config{DocRoots: []string{dir}})
	path := filepath.Join(dir, "t.lua")
	write(b, path, string(src))
	p := []byte(path)
	if _, err := c.Lookup(p); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.event(-1, unix.IN_Q_OVERFLOW, nil) // as if the file had changed
		if _, err := c.Lookup(p); err != nil {
			b.Fatal(err)
		}
	}
}
