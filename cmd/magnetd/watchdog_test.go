package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// statusFigure reads one pool figure of the JSON status page.
func statusFigure(t *testing.T, port int, name string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status?json", port))
	if err != nil {
		t.Fatalf("status page: %v", err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("status page: %v", err)
	}
	f, ok := v[name].(float64)
	if !ok {
		t.Fatalf("status page has no %q: %v", name, v)
	}
	return f
}

// seed123 is the seed's 123.lua, answered "123".
func seed123(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../examples/123.lua")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWatchdogKillsStuckWorker: a request stuck in C (os.execute("sleep
// 30"), which the instruction hook cannot interrupt) gets its connection
// closed once --request-terminate-timeout has passed; the worker and its
// sleep are killed, the kill is logged with pid, script, URI and duration
// and counted on the status page, a replacement starts at once, and a
// steady 123.lua load on the same pool is answered correctly throughout.
func TestWatchdogKillsStuckWorker(t *testing.T) {
	port := testutil.FreePort(t)
	p := startWorkerPool(t, 2, "--request-terminate-timeout", "1s", "--status-listen", fmt.Sprintf("127.0.0.1:%d", port))
	stuck := filepath.Join(filepath.Dir(p.script), "stuck.lua")
	if err := os.WriteFile(stuck, []byte("os.execute(\"sleep 30\")\nprint(\"woke\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kids := testutil.Children(p.m.pid(), "")
	l := startLoad(t, "unix", p.sock, seed123(t), "123", 2, 1)
	l.WaitAnswered(t, 100, 30*time.Second)

	start := time.Now()
	body, err := request("unix", p.sock, stuck, "")
	took := time.Since(start)
	if err == nil {
		t.Fatalf("stuck request answered %q after %v", body, took)
	}
	if took < time.Second || took > 3*time.Second {
		t.Errorf("stuck request failed after %v (%v); want between the 1s limit and 3s", took, err)
	}
	closed := time.Now()
	var now []int
	if !poll(10*time.Second, func() bool {
		now = testutil.Children(p.m.pid(), "")
		return len(now) == 2 && len(slices.DeleteFunc(slices.Clone(now), func(pid int) bool { return slices.Contains(kids, pid) })) == 1
	}) {
		t.Fatalf("no replacement worker: children %v, before %v", now, kids)
	}
	replaced := time.Since(closed)
	t.Logf("stuck request to client error: %v; client error to replacement running: %v", took, replaced)

	p.m.waitLog("request terminate timeout: killing worker", 10*time.Second)
	var line string
	for _, s := range lines(p.m.out.String(), "request terminate timeout: killing worker") {
		line = s
	}
	for _, want := range []string{"pid=", "script=" + stuck, "uri=", "duration=1.", "timeout=1s"} {
		if !strings.Contains(line, want) {
			t.Errorf("kill log line lacks %q: %s", want, line)
		}
	}
	if n := statusFigure(t, port, "watchdog kills"); n != 1 {
		t.Errorf("status page: %v watchdog kills, want 1", n)
	}
	if strings.Contains(p.m.out.String(), "backoff=") {
		t.Errorf("the killed worker was restarted after a back-off")
	}

	l.WaitAnswered(t, l.Answered()+100, 30*time.Second)
	ok, failed, errs := l.Stop()
	t.Logf("load: %s", l)
	if failed > 0 || ok == 0 {
		t.Errorf("load beside the stuck request: %d ok, %d failed: %v", ok, failed, errs)
	}
}

// TestMaxRSSRecycles: with --max-rss, a worker whose script grows _G past
// the limit exits gracefully after its request and is replaced at once;
// the recycle is logged and counted on the status page, and every request
// is answered.
func TestMaxRSSRecycles(t *testing.T) {
	port := testutil.FreePort(t)
	p := startWorkerPool(t, 1, "--max-rss", "64M", "--status-listen", fmt.Sprintf("127.0.0.1:%d", port))
	grow := filepath.Join(filepath.Dir(p.script), "grow.lua")
	if err := os.WriteFile(grow, []byte(`_G.hog = _G.hog or {}
local hog = _G.hog
hog[#hog + 1] = string.rep("x", 1024 * 1024 - 16) .. #hog
print("Content-Type: text/plain\r\n\r\ngrown " .. #hog)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	first := testutil.Children(p.m.pid(), "")
	grown := func(body string) int {
		n, _ := strconv.Atoi(strings.TrimSpace(body[strings.LastIndex(body, " ")+1:]))
		return n
	}
	most := 0
	for i := 0; i < 200 && !strings.Contains(p.m.out.String(), "max rss reached"); i++ {
		body, err := request("unix", p.sock, grow, "")
		if err != nil || !strings.Contains(body, "grown") {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		most = max(most, grown(body))
	}
	p.m.waitLog("max rss reached, exiting", 10*time.Second)
	p.m.waitLog("exit status 0", 10*time.Second)
	var now []int
	if !poll(10*time.Second, func() bool {
		now = testutil.Children(p.m.pid(), "")
		return len(now) == 1 && !slices.Contains(first, now[0])
	}) {
		t.Fatalf("no replacement worker: children %v, before %v", now, first)
	}
	// The log line may have come after a request or two already went to
	// the replacement: a fresh _G counts from 1 again, far below most.
	if body, err := request("unix", p.sock, grow, ""); err != nil || !strings.Contains(body, "grown") || grown(body) >= most/2 {
		t.Errorf("replacement answered %q, %v; want a fresh _G (the recycled worker reached %d)", body, err, most)
	}
	if n := statusFigure(t, port, "max rss recycles"); n != 1 {
		t.Errorf("status page: %v max rss recycles, want 1", n)
	}
	if strings.Contains(p.m.out.String(), "backoff=") {
		t.Errorf("the recycled worker was restarted after a back-off")
	}
}
