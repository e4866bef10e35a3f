package worker

import (
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/protocol"
)

// slowCount counts SlowLogged calls.
type slowCount struct {
	nopReporter
	n atomic.Int32
}

func (r *slowCount) SlowLogged() { r.n.Add(1) }

// slowGet runs script through a worker and returns its status.
func slowGet(t *testing.T, sock, script, uri string) string {
	t.Helper()
	c := dial(t, sock)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := c.Do(&protocol.Request{Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script},
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "REQUEST_URI", Value: uri}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(resp.Stdout)
}

// TestSlowLog: a request still running after SlowLogTimeout is logged
// once, with its Lua traceback when it loops in Lua, and with its script
// and URI as in C when it waits in os.execute; each is counted.
func TestSlowLog(t *testing.T) {
	dir := t.TempDir()
	loop := writeScript(t, dir, "loop.lua", "local function spin(t)\n  while os.clock() - t < 1 do end\nend\nspin(os.clock())\nprint('Content-Type: text/plain\\r\\n\\r\\nlooped')\n")
	sleep := writeScript(t, dir, "sleep.lua", "os.execute('sleep 1')\nprint('Content-Type: text/plain\\r\\n\\r\\nslept')\n")
	quick := writeScript(t, dir, "quick.lua", "print('Content-Type: text/plain\\r\\n\\r\\nquick')\n")
	var log testutil.SyncBuffer
	rep := &slowCount{}
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir), Timeout: 10 * time.Second, SlowLogTimeout: 300 * time.Millisecond,
		Reporter: rep, Logger: slog.New(slog.NewTextHandler(&log, nil))})

	if out := slowGet(t, sock, loop, "/loop?x=1"); !strings.Contains(out, "looped") {
		t.Fatalf("loop.lua answered %q", out)
	}
	text := log.String()
	wants := []string{"loop.lua:2: in function 'spin'", "loop.lua:4: in main chunk"}
	if luabind.LuaJIT {
		wants = []string{"in C"} // the loop runs compiled, where no hook fires
	}
	for _, want := range append(wants, "slow request", `uri="/loop?x=1"`) {
		if !strings.Contains(text, want) {
			t.Fatalf("slow log of a Lua loop lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "slow request"); n != 1 || rep.n.Load() != 1 {
		t.Fatalf("logged %d times, counted %d; want once", n, rep.n.Load())
	}

	if out := slowGet(t, sock, sleep, "/sleep"); !strings.Contains(out, "slept") {
		t.Fatalf("sleep.lua answered %q", out)
	}
	text = log.String()
	if !strings.Contains(text, "script="+sleep) || !strings.Contains(text, "uri=/sleep") || !strings.Contains(text, "in C") {
		t.Fatalf("slow log of a request in C:\n%s", text)
	}
	if rep.n.Load() != 2 {
		t.Fatalf("counted %d, want 2", rep.n.Load())
	}

	// the hook is gone: fast requests after it are not logged
	for range 20 {
		if out := slowGet(t, sock, quick, "/quick"); !strings.Contains(out, "quick") {
			t.Fatalf("quick.lua answered %q", out)
		}
	}
	if rep.n.Load() != 2 || strings.Contains(log.String(), "/quick") {
		t.Fatalf("fast requests logged:\n%s", log.String())
	}
}

// TestSlowLogFile: with SlowLog set the entry goes there, the worker's log
// says one line.
func TestSlowLogFile(t *testing.T) {
	dir := t.TempDir()
	loop := writeScript(t, dir, "loop.lua", "local t = os.clock()\nwhile os.clock() - t < 1 do end\n")
	var log, slow testutil.SyncBuffer
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir), SlowLogTimeout: 200 * time.Millisecond, SlowLog: &slow,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	slowGet(t, sock, loop, "/l")
	s := slow.String()
	where := "loop.lua:2: in main chunk"
	if luabind.LuaJIT {
		where = "in C" // compiled: no hook fires
	}
	if !strings.Contains(s, "script_filename = "+loop) || !strings.Contains(s, "uri = /l") || !strings.Contains(s, where) {
		t.Fatalf("slow log file:\n%s", s)
	}
	if !strings.Contains(log.String(), "slow request, logging") {
		t.Fatalf("worker log:\n%s", log.String())
	}
}

// TestNoAllocSlowLog: keeping the URI for the slow log, and the
// stat-checked report, allocate nothing.
func TestNoAllocSlowLog(t *testing.T) {
	s, c, peer, req := serverPair(t)
	s.cfg.SlowLogTimeout = time.Minute
	s.wd.on, s.wd.slow = true, true
	t.Cleanup(s.startWatchdog())
	s.wd.statRep = &statCount{}
	buf := make([]byte, 4096)
	for i := 0; i < 10; i++ {
		roundTrip(t, s, c, peer, req, buf)
	}
	if n := testing.AllocsPerRun(1000, func() { roundTrip(t, s, c, peer, req, buf) }); n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
}

// statCount keeps the last StatChecked report.
type statCount struct {
	nopReporter
	n, calls atomic.Int32
}

// StatChecked counts the call before it stores n: a test that sees n
// then sees the call counted too.
func (r *statCount) StatChecked(n int) { r.calls.Add(1); r.n.Store(int32(n)) }

// TestStatCheckedReported: with watching off every cached script is
// checked by stat, and the reporter hears of each new one after its
// request.
func TestStatCheckedReported(t *testing.T) {
	dir := t.TempDir()
	a := writeScript(t, dir, "a.lua", "print('Content-Type: text/plain\\r\\n\\r\\na')\n")
	b := writeScript(t, dir, "b.lua", "print('Content-Type: text/plain\\r\\n\\r\\nb')\n")
	cfg := scriptsIn(dir)
	cfg.NoWatch = true
	rep := &statCount{}
	sock, _ := startServer(t, Config{Scripts: cfg, Reporter: rep})
	// The worker reports after it has answered: wait for the report.
	reported := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for rep.n.Load() != want {
			if time.Now().After(deadline) {
				t.Fatalf("stat checked %d, want %d", rep.n.Load(), want)
			}
			runtime.Gosched()
		}
	}
	slowGet(t, sock, a, "/a")
	reported(1)
	slowGet(t, sock, b, "/b")
	reported(2)
	calls := rep.calls.Load()
	for range 10 {
		slowGet(t, sock, a, "/a")
	}
	if got := rep.n.Load(); got != 2 || rep.calls.Load() != calls {
		t.Fatalf("stat checked %d (%d reports, %d before the repeats), want 2 and no new report", got, rep.calls.Load(), calls)
	}
}
