package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// sharedScript answers "<worker pid> <result>" for ?op=set|incr|get&k=K&v=V
// on magnet.shared.state.
const sharedScript = `
local d = magnet.shared.state
local q = magnet.request.get
local f = io.open("/proc/self/stat")
local pid = f:read("*n")
f:close()
local r
if q.op == "set" then r = tostring(d:set(q.k, q.v))
elseif q.op == "incr" then r = tostring(d:incr(q.k, 1, 0))
else r = tostring(d:get(q.k)) end
io.write("Content-Type: text/plain\r\n\r\n", pid, " ", r)
`

// TestSharedAcrossWorkers: a value set through one worker is read through
// another, survives a worker killed with SIGKILL and a SIGHUP reload, and
// shows on the status page; increments from all workers add up.
func TestSharedAcrossWorkers(t *testing.T) {
	needWorker(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "m.sock")
	script := filepath.Join(dir, "shared.lua")
	if err := os.WriteFile(script, []byte(sharedScript), 0o644); err != nil {
		t.Fatal(err)
	}
	statusAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "2", "--shared", "state=1M", "--shared", "other=64K", "--status-listen", statusAddr)
	waitChildren(t, m.pid(), 2, 30*time.Second)

	call := func(query string) (pid, result string) {
		t.Helper()
		var body string
		var err error
		if !poll(30*time.Second, func() bool {
			body, err = request("unix", sock, script, query)
			return err == nil
		}) {
			t.Fatalf("%s: %v", query, err)
		}
		pid, result, _ = strings.Cut(body, " ")
		return pid, result
	}
	// get from every worker until each answered with the value
	seenBy := func(k, want string, workers int) {
		t.Helper()
		askAll(t, sock, script, "op=get&k="+k, workers, func(pid, got string) string {
			if got != want {
				return fmt.Sprintf("worker %s: %s = %q, want %q", pid, k, got, want)
			}
			return ""
		})
	}

	setter, r := call("op=set&k=greeting&v=hello")
	if r != "true" {
		t.Fatalf("set: %q", r)
	}
	seenBy("greeting", "hello", 2)
	t.Logf("set by worker %s, read by both", setter)

	pids := map[string]bool{}
	for i := 0; i < 100; i++ {
		pid, _ := call("op=incr&k=hits")
		pids[pid] = true
	}
	if _, r := call("op=get&k=hits"); r != "100" {
		t.Fatalf("100 increments from %d workers: hits = %s", len(pids), r)
	}

	// kill -9 a worker: the store stays
	kids := testutil.Children(m.pid(), "")
	syscall.Kill(kids[0], syscall.SIGKILL)
	if !poll(30*time.Second, func() bool {
		now := testutil.Children(m.pid(), "")
		return len(now) == 2 && !slices.Contains(now, kids[0])
	}) {
		t.Fatal("no replacement for the killed worker")
	}
	seenBy("greeting", "hello", 2)

	// SIGHUP: a new generation of workers, same store
	before := testutil.Children(m.pid(), "")
	m.signal(syscall.SIGHUP)
	if !poll(60*time.Second, func() bool {
		now := testutil.Children(m.pid(), "")
		return len(now) == 2 && !slices.Contains(now, before[0]) && !slices.Contains(now, before[1])
	}) {
		t.Fatal("workers not replaced after SIGHUP")
	}
	seenBy("greeting", "hello", 2)
	if _, r := call("op=get&k=hits"); r != "100" {
		t.Fatalf("after reload: hits = %s", r)
	}

	// the status page, text and JSON
	for _, q := range []string{"", "?json"} {
		resp, err := http.Get("http://" + statusAddr + "/status" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		if q == "" && !strings.Contains(page, "shared state: capacity 1048576, used ") {
			t.Errorf("text status page has no line for the dictionary:\n%s", page)
		}
		if q != "" && !strings.Contains(page, `"shared":[{"name":"state","capacity":1048576`) {
			t.Errorf("JSON status page has no dictionary:\n%s", page)
		}
	}
	m.stop(sock)
}

// TestSharedBadFlag: a bad --shared is refused before anything starts.
func TestSharedBadFlag(t *testing.T) {
	for _, arg := range []string{"no-size", "bad-name=1M", "x=1", "x=1M,x=2M", "9x=1M"} {
		code, out := runMagnetd(t, "-s", filepath.Join(t.TempDir(), "s.sock"), "--shared", arg, "--", "/bin/true")
		if code == 0 || !strings.Contains(out, "--shared") {
			t.Errorf("--shared %s: exit %d, %q", arg, code, out)
		}
	}
}

// askAll sends the request for script with query until workers distinct
// workers answered ("<pid> <result>"), and fails the test on an answer
// check finds wrong (its message) or after 60 s. It asks from four clients
// at once: one at a time, each new connection would wake the same idle
// worker (EPOLLEXCLUSIVE wakes the first one waiting), and a worker
// started later might never be asked; a worker busy with one client's
// request leaves the next connection to another.
func askAll(t *testing.T, sock, script, query string, workers int, check func(pid, result string) string) {
	t.Helper()
	var (
		mu   sync.Mutex
		pids = map[string]bool{}
		bad  string
		wg   sync.WaitGroup
	)
	end := time.Now().Add(60 * time.Second)
	finished := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return bad != "" || len(pids) >= workers || time.Now().After(end)
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !finished() {
				body, err := request("unix", sock, script, query)
				if err != nil {
					continue
				}
				pid, result, _ := strings.Cut(body, " ")
				msg := check(pid, result)
				mu.Lock()
				if msg != "" && bad == "" {
					bad = msg
				}
				pids[pid] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if bad != "" {
		t.Fatal(bad)
	}
	if len(pids) < workers {
		t.Fatalf("%s: only workers %v answered", query, pids)
	}
}
