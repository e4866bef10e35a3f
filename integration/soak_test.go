package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// TestSoak is issue 2's safety soak over a real socket: in one worker,
// 100,000 errors raised by a Go-backed function and caught by pcall, and
// 10,000 uncaught script errors; afterwards the seed's scripts answer
// correctly and the worker's memory has stopped growing.
func TestSoak(t *testing.T) {
	const (
		chunks          = 10
		pcallRequests   = 10   // per chunk
		pcallPerRequest = 1000 // Go-backed errors caught per request
		errorRequests   = 1000 // uncaught script errors per chunk
		maxGrowthKiB    = 2048 // allowed RSS growth over the second half
	)
	w := startWorker(t)
	pcallScript := w.script("soak_pcall.lua")
	errorScript := w.script("soak_error.lua")
	start := time.Now()

	// Warm up: load every script once, so the samples compare like with
	// like.
	c := w.dial(t)
	if err := soakPcall(c, pcallScript, pcallPerRequest); err != nil {
		t.Fatal(err)
	}
	if err := soakError(c, errorScript, 0); err != nil {
		t.Fatal(err)
	}
	rss := []int{rssKiB(t, w.proc.pid())}

	for chunk := 1; chunk <= chunks; chunk++ {
		c := w.dial(t) // a fresh connection per chunk
		for i := 0; i < pcallRequests; i++ {
			if err := soakPcall(c, pcallScript, pcallPerRequest); err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
		}
		for i := 0; i < errorRequests; i++ {
			if err := soakError(c, errorScript, i); err != nil {
				t.Fatalf("chunk %d, error request %d: %v", chunk, i, err)
			}
		}
		c.Close()
		rss = append(rss, rssKiB(t, w.proc.pid()))
	}
	t.Logf("%d Go-backed errors caught, %d uncaught script errors in %v; VmRSS KiB after warm-up and each tenth: %v",
		chunks*pcallRequests*pcallPerRequest, chunks*errorRequests, time.Since(start).Round(time.Millisecond), rss)

	// The seed's scripts still answer correctly.
	c = w.dial(t)
	if err := check123FCGI(fcgiGet(c, w.script("123.lua"), "")); err != nil {
		t.Fatalf("after the soak: %v", err)
	}
	r, err := fcgiGet(c, w.script("cache-admin.lua"), "")
	if err != nil || r.status != 200 {
		t.Fatalf("cache-admin.lua after the soak: status %d: %v", r.status, err)
	}
	hits := parseCacheAdmin(t, r.body)
	want := map[string]int{
		w.script("123.lua"):         1,
		w.script("cache-admin.lua"): 1,
		pcallScript:                 1 + chunks*pcallRequests,
		errorScript:                 1 + chunks*errorRequests,
	}
	for name, n := range want {
		if hits[name] != n {
			t.Errorf("cache-admin.lua after the soak: %s has %d hits, want %d", filepath.Base(name), hits[name], n)
		}
	}

	half := rss[chunks/2]
	if growth := rss[chunks] - half; growth > maxGrowthKiB {
		t.Errorf("worker VmRSS grew by %d KiB over the second half of the soak (from %d to %d KiB), want at most %d KiB",
			growth, half, rss[chunks], maxGrowthKiB)
	}
	if w.proc.exited() {
		t.Fatalf("worker exited: %v", w.proc.err)
	}
}

// soakPcall runs soak_pcall.lua, which catches n Go-backed errors.
func soakPcall(c *protocol.Client, script string, n int) error {
	r, err := fcgiGet(c, script, fmt.Sprint(n))
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("%d magnet.fs.stat", n); r.status != 200 || r.body != want {
		return fmt.Errorf("soak_pcall.lua: status %d body %q, want 200 %q; stderr %q", r.status, r.body, want, r.stderr)
	}
	return nil
}

// soakError runs soak_error.lua, which raises an uncaught error: a table
// on odd i, a string on even i.
func soakError(c *protocol.Client, script string, i int) error {
	q := fmt.Sprint(i)
	if i%2 == 1 {
		q = "table"
	}
	r, err := fcgiGet(c, script, q)
	if err != nil {
		return err
	}
	if r.status != 500 {
		return fmt.Errorf("soak_error.lua?%s: status %d body %q, want 500", q, r.status, r.body)
	}
	if len(r.body) > 512 || strings.Contains(r.body, "traceback") {
		return fmt.Errorf("soak_error.lua?%s: the 500 body should be short and without details (no --debug): %q", q, r.body)
	}
	if r.stderr == "" {
		return fmt.Errorf("soak_error.lua?%s: nothing on FCGI_STDERR", q)
	}
	if q != "table" && !strings.Contains(r.stderr, "soak: uncaught error "+q) {
		return fmt.Errorf("soak_error.lua?%s: FCGI_STDERR lacks the error message: %q", q, r.stderr)
	}
	return nil
}
