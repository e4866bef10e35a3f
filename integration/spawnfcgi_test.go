package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

const spawnFCGIBin = "/usr/bin/spawn-fcgi"

// spawnFCGI runs spawn-fcgi -s <tmp>/sf.sock -F 2 -P <pidfile> -- app
// args... and returns the socket and the two child pids. spawn-fcgi forks
// the children into sessions of their own and exits (-n, no fork, cannot
// be combined with -F), so the test kills the children itself.
func spawnFCGI(t *testing.T, app string, args ...string) (socket string, pids []int) {
	t.Helper()
	testutil.LookPath(t, spawnFCGIBin, "spawn-fcgi")
	dir := t.TempDir()
	socket = filepath.Join(dir, "sf.sock")
	pidFile := filepath.Join(dir, "sf.pid")
	cmd := exec.Command(spawnFCGIBin, append([]string{"-s", socket, "-F", "2", "-P", pidFile, "--", app}, args...)...)
	out, err := cmd.CombinedOutput()
	// Read the pid file even on failure, so no child is left behind.
	b, _ := os.ReadFile(pidFile)
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			killTree(pid)
		}
	})
	if err != nil {
		t.Fatalf("spawn-fcgi: %v\n%s", err, out)
	}
	if len(pids) != 2 {
		t.Fatalf("spawn-fcgi -F 2 wrote pids %v, want 2; output:\n%s", pids, out)
	}
	waitDial(t, nil, "unix", socket)
	return socket, pids
}

// TestSpawnFCGIReference checks the spawn-fcgi set-up with the reference
// responder: both children answer on the one socket.
func TestSpawnFCGIReference(t *testing.T) {
	socket, pids := spawnFCGI(t, refBin)
	var mu sync.Mutex
	seen := map[int]bool{}
	deadline := time.Now().Add(startTimeout)
	for len(seen) < 2 && time.Now().Before(deadline) {
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := fcgiOnce("unix", socket, "/x.lua", "")
				var pid int
				if err == nil {
					_, err = fmt.Sscanf(r.body, "ref %d", &pid)
				}
				if err != nil || !slices.Contains(pids, pid) {
					t.Errorf("reference responder answered %q, want \"ref <pid>\" with a pid in %v: %v", r.body, pids, err)
					return
				}
				mu.Lock()
				seen[pid] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	if len(seen) != 2 {
		t.Fatalf("only pids %v answered, want both of %v", seen, pids)
	}
}

// TestSpawnFCGI: spawn-fcgi -F 2 starts two magnet-workers on one socket
// (each finds the listening socket on fd 0); both serve requests from
// several concurrent connections, and after kill -9 of one the other
// keeps serving.
func TestSpawnFCGI(t *testing.T) {
	needWorker(t)
	docroot := makeDocroot(t)
	socket, pids := spawnFCGI(t, workerBin)
	pidScript := filepath.Join(docroot, "pid.lua")
	script123 := filepath.Join(docroot, "123.lua")

	// Several concurrent connections, new ones and keep-alive ones,
	// until both workers have answered.
	var mu sync.Mutex
	seen := map[int]int{}
	deadline := time.Now().Add(startTimeout)
	for len(seen) < 2 && time.Now().Before(deadline) {
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func(keep bool) {
				defer wg.Done()
				if err := pidRequests(socket, pidScript, script123, keep, pids, &mu, seen); err != nil {
					t.Error(err)
				}
			}(g%2 == 0)
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	if len(seen) != 2 {
		t.Fatalf("requests answered by %v, want both workers %v", seen, pids)
	}
	t.Logf("requests per worker: %v", seen)

	// kill -9 one worker; the other keeps serving on the same socket.
	victim, survivor := pids[0], pids[1]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, exitTimeout, "killed worker gone", func() error {
		if testutil.Alive(victim) {
			return fmt.Errorf("pid %d still alive", victim)
		}
		return nil
	})
	for i := 0; i < 20; i++ {
		r, err := fcgiOnce("unix", socket, pidScript, "")
		if err != nil {
			t.Fatalf("request %d after kill -9 of %d: %v", i, victim, err)
		}
		if r.status != 200 || strings.TrimSpace(r.body) != strconv.Itoa(survivor) {
			t.Fatalf("request %d after kill -9 of %d: status %d body %q, want pid %d", i, victim, r.status, r.body, survivor)
		}
		if err := check123FCGI(fcgiOnce("unix", socket, script123, "")); err != nil {
			t.Fatalf("after kill -9 of %d: %v", victim, err)
		}
	}
}

// pidRequests makes 10 pid.lua and 10 123.lua requests, over one
// keep-alive connection or a new connection each, and counts the answers
// per worker pid in seen.
func pidRequests(socket, pidScript, script123 string, keep bool, pids []int, mu *sync.Mutex, seen map[int]int) error {
	// pid.lua spins 5 ms, so that a busy worker leaves the next
	// connection to the other one.
	get := func(script string) (fcgiResult, error) { return fcgiOnce("unix", socket, script, "5") }
	if keep {
		c, err := dialFCGI(socket)
		if err != nil {
			return err
		}
		defer c.Close()
		get = func(script string) (fcgiResult, error) { return fcgiGet(c, script, "5") }
	}
	for i := 0; i < 10; i++ {
		r, err := get(pidScript)
		if err != nil {
			return fmt.Errorf("pid.lua (keep-conn %v): %w", keep, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(r.body))
		if err != nil || r.status != 200 || !slices.Contains(pids, pid) {
			return fmt.Errorf("pid.lua (keep-conn %v): status %d body %q, want a pid in %v", keep, r.status, r.body, pids)
		}
		mu.Lock()
		seen[pid]++
		mu.Unlock()
		if err := check123FCGI(get(script123)); err != nil {
			return fmt.Errorf("keep-conn %v: %w", keep, err)
		}
	}
	return nil
}
