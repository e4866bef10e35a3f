package luabind

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// slowRun runs src on a thread of its own and takes tracebacks of it from
// this goroutine until one shows the line want (the script has reached
// its loop) or the run ends.
func slowRun(t *testing.T, st *State, timeout time.Duration, src, want string) (tb string, ok bool, runErr error) {
	t.Helper()
	tr, err := st.Tracer()
	if err != nil {
		t.Fatal(err)
	}
	st.SetTimeout(timeout)
	c := load(t, st, "/srv/slow.lua", src)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		close(started)
		done <- st.Run(c, &Request{})
	}()
	<-started
	// the run has begun once the hook has something to see: retry until
	// a traceback comes or the run ends
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, got := tr.Traceback(nil, 100*time.Millisecond)
		if got && strings.Contains(string(b), want) {
			return string(b), true, <-done
		}
		select {
		case err := <-done:
			return "", false, err
		default:
		}
	}
	t.Fatal("no traceback and no end in 30s")
	return
}

// skipJIT skips a test of a script that loops in Lua: LuaJIT runs such a
// loop as compiled code, where neither the time limit nor the traceback
// hook fires (README: Time limits).
func skipJIT(t *testing.T) {
	if LuaJIT {
		t.Skip("LuaJIT: hooks do not fire in compiled loops")
	}
}

func TestTracebackInLua(t *testing.T) {
	skipJIT(t)
	st := newState(t)
	tb, ok, err := slowRun(t, st, 2*time.Second, "local function spin()\n  while true do end\nend\nspin()\n", "/srv/slow.lua:2:")
	if !ok {
		t.Fatalf("no traceback (run ended: %v)", err)
	}
	if !strings.Contains(tb, "/srv/slow.lua:2: in function 'spin'") && !strings.Contains(tb, "/srv/slow.lua:2: in function </srv/slow.lua:1>") {
		t.Fatalf("traceback %q lacks the loop's line and function", tb)
	}
	if !strings.Contains(tb, "/srv/slow.lua:4: in main chunk") {
		t.Fatalf("traceback %q lacks the main chunk", tb)
	}
	// the time limit hook is back and ends the run
	if err == nil || !strings.Contains(err.Error(), "time limit") {
		t.Fatalf("run after the traceback: %v, want the time limit error", err)
	}
	seedStillWorks(t, st)
}

func TestTracebackNoTimeout(t *testing.T) {
	skipJIT(t)
	st := newState(t)
	// without a time limit the hook removes itself: the loop ends on its own
	tb, ok, err := slowRun(t, st, 0, "local t = os.time() + 1\nwhile os.time() <= t do end\nprint('Content-Type: text/plain\\r\\n\\r\\nok')\n", "/srv/slow.lua:2:")
	if !ok || !strings.Contains(tb, "/srv/slow.lua:2: in main chunk") {
		t.Fatalf("traceback %q (%v)", tb, ok)
	}
	if err != nil || !strings.HasSuffix(string(st.Output()), "\r\n\r\nok") {
		t.Fatalf("run: %v, output %q", err, st.Output())
	}
}

func TestTracebackInC(t *testing.T) {
	st := newState(t)
	tr, err := st.Tracer()
	if err != nil {
		t.Fatal(err)
	}
	c := load(t, st, "/srv/sleep.lua", `os.execute("sleep 1")`)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- st.Run(c, &Request{})
	}()
	// the first ask may come before the run starts; later ones land in C
	misses := 0
	for range 5 {
		if _, ok := tr.Traceback(nil, 100*time.Millisecond); !ok {
			misses++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if misses == 0 {
		t.Fatal("every ask answered while the run was in os.execute")
	}
	seedStillWorks(t, st)
}
