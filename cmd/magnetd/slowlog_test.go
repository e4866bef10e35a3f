package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// TestSlowLog: with --slowlog-timeout and --slowlog, a request looping in
// Lua gets its traceback in the slow log file and one in os.execute its
// script and URI as in C; both are counted as slow requests on the status
// page, and the worker keeps serving.
func TestSlowLog(t *testing.T) {
	port := testutil.FreePort(t)
	slowlog := filepath.Join(t.TempDir(), "slow.log")
	p := startWorkerPool(t, 1, "--slowlog-timeout", "300ms", "--slowlog", slowlog, "--status-listen", fmt.Sprintf("127.0.0.1:%d", port))
	dir := filepath.Dir(p.script)
	loop := filepath.Join(dir, "loop.lua")
	sleep := filepath.Join(dir, "sleep.lua")
	for name, src := range map[string]string{
		loop:  "local function spin(t)\n  while os.clock() - t < 1 do end\nend\nspin(os.clock())\nprint(\"Content-Type: text/plain\\r\\n\\r\\nlooped\")\n",
		sleep: "os.execute(\"sleep 1\")\nprint(\"Content-Type: text/plain\\r\\n\\r\\nslept\")\n",
	} {
		if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if body, err := request("unix", p.sock, loop, "a=1"); err != nil || !strings.Contains(body, "looped") {
		t.Fatalf("loop.lua: %q, %v", body, err)
	}
	if body, err := request("unix", p.sock, sleep, "b=2"); err != nil || !strings.Contains(body, "slept") {
		t.Fatalf("sleep.lua: %q, %v", body, err)
	}
	var text string
	if !poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(slowlog)
		text = string(b)
		return strings.Count(text, "script_filename = ") == 2
	}) {
		t.Fatalf("slow log:\n%s", text)
	}
	for _, want := range []string{"script_filename = " + loop, "loop.lua:2: in function 'spin'", "loop.lua:4: in main chunk",
		"script_filename = " + sleep, "in C:"} {
		if !strings.Contains(text, want) {
			t.Errorf("slow log lacks %q:\n%s", want, text)
		}
	}
	p.m.waitLog("slow request, logging", 10*time.Second)
	if n := statusFigure(t, port, "slow requests"); n != 2 {
		t.Errorf("status page: %v slow requests, want 2", n)
	}
	if body, err := request("unix", p.sock, p.script, ""); err != nil || body == "" {
		t.Errorf("after the slow requests: %q, %v", body, err)
	}
}
