package integration

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestSharedStandalone: two magnet-workers that spawn-fcgi -F 2 started
// on one socket, with no magnetd, share --shared d=1M through the file in
// /dev/shm named after that socket. Concurrent requests over both workers
// each add 1 to one counter; every answer names its worker, both workers
// answer, and the final count is exact.
func TestSharedStandalone(t *testing.T) {
	needWorker(t)
	dir := t.TempDir()
	socket, pids := spawnFCGI(t, workerBin, "--shared", "d=1M")
	// The file the workers map (cmd/magnet-worker/shared.go): per user,
	// per socket, per name. It outlives them: the test removes it.
	h := fnv.New64a()
	h.Write([]byte("unix:" + socket))
	shm := fmt.Sprintf("/dev/shm/magnet-shared-%d-%016x-d", os.Geteuid(), h.Sum64())
	t.Cleanup(func() { os.Remove(shm) })
	script := filepath.Join(dir, "incr.lua")
	// A few ms of CPU per request, so that a busy worker leaves the next
	// connection to the other one.
	src := `local t0 = os.clock()
while os.clock() - t0 < 0.002 do end
local n, err = magnet.shared.d:incr("hits", 1, 0)
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("*l"):match("^(%d+)")
f:close()
print("Content-Type: text/plain\r\n\r\n" .. pid .. " " .. tostring(n or err))`
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(shm); err != nil {
		t.Fatalf("the workers' dictionary file: %v", err)
	}

	const clients, each = 8, 50
	var mu sync.Mutex
	perWorker := map[int]int{}
	counts := map[int]bool{}
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(keep bool) {
			defer wg.Done()
			get := func() (fcgiResult, error) { return fcgiOnce("unix", socket, script, "") }
			if keep {
				c, err := dialFCGI(socket)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				get = func() (fcgiResult, error) { return fcgiGet(c, script, "") }
			}
			for i := 0; i < each; i++ {
				r, err := get()
				var pid, n int
				if err == nil {
					_, err = fmt.Sscanf(r.body, "%d %d", &pid, &n)
				}
				if err != nil || r.status != 200 || !slices.Contains(pids, pid) {
					t.Errorf("status %d body %q, want \"<pid of %v> <count>\": %v", r.status, r.body, pids, err)
					return
				}
				mu.Lock()
				perWorker[pid]++
				if counts[n] {
					t.Errorf("count %d answered twice", n)
				}
				counts[n] = true
				mu.Unlock()
			}
		}(g%2 == 0)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("requests per worker: %v", perWorker)
	if len(perWorker) != 2 {
		t.Fatalf("requests answered by %v only, want both workers %v", perWorker, pids)
	}
	// Every request added one: the counts 1..N were each answered once,
	// and a last read sees N.
	r, err := fcgiOnce("unix", socket, script, "")
	var pid, n int
	if err == nil {
		_, err = fmt.Sscanf(r.body, "%d %d", &pid, &n)
	}
	if err != nil || n != clients*each+1 {
		t.Fatalf("final count: %q (%v), want %d", r.body, err, clients*each+1)
	}
}
