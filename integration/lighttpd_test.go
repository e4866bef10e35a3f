package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

const lighttpdBin = "/usr/sbin/lighttpd"

// lighttpd is a running lighttpd with the 2006 deployment.
type lighttpd struct {
	proc    *proc
	docroot string
	base    string // http://127.0.0.1:port/
}

// startLighttpd starts lighttpd -D with fastcgi.server bin-path = worker,
// max-procs = 2, and waits until it answers HTTP and both FastCGI
// processes run.
func startLighttpd(t *testing.T, worker string) *lighttpd {
	t.Helper()
	testutil.LookPath(t, lighttpdBin, "lighttpd")
	c := serverConfig{Dir: t.TempDir(), DocRoot: makeDocroot(t), Worker: worker}
	p, port := startOnFreePort(t, func(port int) *proc {
		c.Port = port
		conf := writeConfig(t, "lighttpd.conf", c)
		return startProc(t, lighttpdBin, []string{"-D", "-f", conf}, nil)
	})
	name := filepath.Base(worker)
	waitFor(t, startTimeout, "lighttpd's 2 FastCGI processes", func() error {
		if n := len(testutil.Children(p.pid(), name)); n != 2 {
			return fmt.Errorf("%d %s processes under lighttpd", n, name)
		}
		return nil
	})
	return &lighttpd{proc: p, docroot: c.DocRoot, base: fmt.Sprintf("http://127.0.0.1:%d/", port)}
}

// TestLighttpdReference checks the lighttpd set-up itself with the
// reference responder, so that a broken set-up is not blamed on the worker.
func TestLighttpdReference(t *testing.T) {
	l := startLighttpd(t, refBin)
	r := httpGet(t, l.base+"123.lua")
	want := filepath.Join(l.docroot, "123.lua")
	if r.status != 200 || !strings.HasPrefix(r.body, "ref ") || !strings.HasSuffix(r.body, " "+want) {
		t.Fatalf("reference responder: status %d body %q; want 200 and \"ref <pid> %s\"", r.status, r.body, want)
	}
	if r := httpGet(t, l.base+"missing.lua"); r.status != 404 {
		t.Fatalf("missing.lua: status %d, want 404", r.status)
	}
}

// TestLighttpd runs the 2006 deployment: lighttpd spawns two
// magnet-workers through bin-path, on sockets in a temporary directory.
func TestLighttpd(t *testing.T) {
	needWorker(t)
	l := startLighttpd(t, workerBin)
	workers := testutil.Children(l.proc.pid(), "magnet-worker")

	t.Run("123", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			check123(t, httpGet(t, l.base+"123.lua"))
		}
	})
	t.Run("cache-admin", func(t *testing.T) { testCacheAdmin(t, l) })
	t.Run("hits", func(t *testing.T) { testHitsSum(t, l, workers) })
	t.Run("reload", func(t *testing.T) { testReload(t, l.docroot, l.base) })
	t.Run("error", func(t *testing.T) { testErrorThenOK(t, l.base) })
	t.Run("missing", func(t *testing.T) {
		if r := httpGet(t, l.base+"missing.lua"); r.status != 404 {
			t.Fatalf("missing.lua: status %d, want 404", r.status)
		}
	})
	for _, pid := range workers {
		if !testutil.Alive(pid) {
			t.Errorf("worker %d died during the test", pid)
		}
	}
}

// adminRow matches one row of the seed's cache-admin.lua table.
var adminRow = regexp.MustCompile(`<tr><td>([^<]*)</td>\s*<td align="right">([^<]*)</td>\s*<td align="right">(\d+)</td></tr>`)

// parseCacheAdmin returns script name → hits from a cache-admin.lua page.
func parseCacheAdmin(t *testing.T, body string) map[string]int {
	t.Helper()
	if !strings.HasPrefix(body, `<table border="1">`) || !strings.HasSuffix(body, "</table>") {
		t.Fatalf("cache-admin.lua: not the seed's table:\n%s", body)
	}
	rows := map[string]int{}
	for _, m := range adminRow.FindAllStringSubmatch(body, -1) {
		if strings.TrimSpace(m[2]) == "" {
			t.Errorf("cache-admin.lua: empty mtime for %s", m[1])
		}
		n, _ := strconv.Atoi(m[3])
		rows[m[1]] = n
	}
	return rows
}

// testCacheAdmin: a page of cache-admin.lua lists 123.lua and itself with
// their hits. Each worker has its own cache, and lighttpd may send the two
// requests to different workers, so it tries a few times.
func testCacheAdmin(t *testing.T, l *lighttpd) {
	p123 := filepath.Join(l.docroot, "123.lua")
	pAdmin := filepath.Join(l.docroot, "cache-admin.lua")
	var last string
	for i := 0; i < 20; i++ {
		check123(t, httpGet(t, l.base+"123.lua"))
		r := httpGet(t, l.base+"cache-admin.lua")
		if r.status != 200 || r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
			t.Fatalf("cache-admin.lua: status %d, Content-Length %q for %d bytes",
				r.status, r.header.Get("Content-Length"), len(r.body))
		}
		rows := parseCacheAdmin(t, r.body)
		for name, hits := range rows {
			if hits < 1 {
				t.Errorf("cache-admin.lua: %s has %d hits, want >= 1", name, hits)
			}
		}
		if rows[pAdmin] < 1 {
			t.Fatalf("cache-admin.lua does not list itself (%s):\n%s", pAdmin, r.body)
		}
		if rows[p123] >= 1 {
			return
		}
		last = r.body
	}
	t.Fatalf("cache-admin.lua never listed %s after 20 tries; last page:\n%s", p123, last)
}

// probeWorkers asks both workers for their hit count of 123.lua: pairs of
// concurrent, slowed requests to hits.lua land on different workers
// (lighttpd balances on load). It returns pid → hits.
func probeWorkers(t *testing.T, l *lighttpd, workers []int) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for round := 0; round < 30 && len(seen) < 2; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := get(l.base + "hits.lua?50")
				var pid, hits int
				if err == nil {
					_, err = fmt.Sscanf(r.body, "%d %d", &pid, &hits)
				}
				if err != nil || r.status != 200 {
					t.Errorf("hits.lua: status %d body %q: %v", r.status, r.body, err)
					return
				}
				mu.Lock()
				seen[pid] = hits
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	for pid := range seen {
		if !slices.Contains(workers, pid) {
			t.Fatalf("hits.lua ran in pid %d, not one of lighttpd's workers %v", pid, workers)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("could not reach both workers %v; saw %v", workers, seen)
	}
	return seen
}

// testHitsSum: after N requests to 123.lua spread over both workers, the
// hits of 123.lua in the two workers' caches grew by N in total.
func testHitsSum(t *testing.T, l *lighttpd, workers []int) {
	before := probeWorkers(t, l, workers)
	const n, conc = 40, 4
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/conc; i++ {
				r, err := get(l.base + "123.lua")
				if err != nil || r.status != 200 || r.body != "123" {
					t.Errorf("123.lua: status %d body %q: %v", r.status, r.body, err)
				}
			}
		}()
	}
	wg.Wait()
	after := probeWorkers(t, l, workers)
	sum := 0
	for pid, h := range after {
		if h < before[pid] {
			t.Errorf("worker %d: hits of 123.lua went down from %d to %d", pid, before[pid], h)
		}
		sum += h - before[pid]
	}
	if sum != n {
		t.Fatalf("hits of 123.lua grew by %d across both workers (before %v, after %v), want %d", sum, before, after, n)
	}
}

// testReload rewrites a script three times within about a second, twice
// with a new size and once with the same size: each version is served on
// the next request.
func testReload(t *testing.T, docroot, base string) {
	path := filepath.Join(docroot, "reload.lua")
	start := time.Now()
	for _, v := range []string{"one", "two-longer", "3rd-longer"} {
		src := fmt.Sprintf("print(\"Content-Type: text/plain\\r\\n\\r\\n%s\")\n", v)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		r := httpGet(t, base+"reload.lua")
		if r.status != 200 || r.body != v {
			t.Fatalf("after rewriting reload.lua to version %q: status %d body %q", v, r.status, r.body)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("the three versions took %v, more than the one second the test aims at", d)
	}
}

// testErrorThenOK: a runtime error gives 500 and the next request works.
func testErrorThenOK(t *testing.T, base string) {
	for i := 0; i < 3; i++ {
		r := httpGet(t, base+"error.lua")
		if r.status != 500 {
			t.Fatalf("error.lua: status %d, want 500 (body %q)", r.status, r.body)
		}
		if strings.Contains(r.body, "not reached") {
			t.Errorf("error.lua: output printed before the error leaked into the 500 response: %q", r.body)
		}
		check123(t, httpGet(t, base+"123.lua"))
	}
}
