package scoreboard

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// childEnv makes the test binary act as a worker writing its slot.
const childEnv = "SCOREBOARD_TEST_CHILD"

func TestMain(m *testing.M) {
	if n := os.Getenv(childEnv); n != "" {
		os.Exit(runChild(n))
	}
	os.Exit(m.Run())
}

// runChild attaches from the environment and serves n fake requests.
func runChild(count string) int {
	n, err := strconv.Atoi(count)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := AttachFromEnv()
	if err != nil || s == nil {
		fmt.Fprintln(os.Stderr, "attach:", s, err)
		return 2
	}
	write(s, n)
	return 0
}

// write serves n fake requests whose fields all follow from their number,
// so a reader can tell a torn copy from a consistent one.
func write(s *Slot, n int) {
	writeFrom(s, 1, n)
}

// writeFrom serves the fake requests numbered first to last.
func writeFrom(s *Slot, first, last int) {
	uri := make([]byte, 0, 64)
	script := make([]byte, 0, 64)
	for k := first; k <= last; k++ {
		s.Accepted()
		uri = strconv.AppendInt(append(uri[:0], "/req/"...), int64(k), 10)
		script = strconv.AppendInt(append(script[:0], "/srv/script-"...), int64(k), 10)
		s.Begin([]byte("GET"), uri, script)
		s.Details(int64(k), nil)
		s.End(uint64(k))
	}
}

// check reports a snapshot whose fields disagree with each other.
func check(s Snapshot) error {
	switch s.State {
	case Busy:
		k := s.Requests + 1
		if s.URI != "/req/"+strconv.FormatUint(k, 10) || s.Script != "/srv/script-"+strconv.FormatUint(k, 10) || s.Method != "GET" {
			return fmt.Errorf("busy with request %d but URI %q script %q method %q", k, s.URI, s.Script, s.Method)
		}
		if s.ContentLength != 0 && s.ContentLength != int64(k) {
			return fmt.Errorf("busy with request %d but content length %d", k, s.ContentLength)
		}
	case Idle:
		k := s.Requests
		if k == 0 {
			if s.URI != "" || s.LastMemory != 0 {
				return fmt.Errorf("idle before any request but URI %q memory %d", s.URI, s.LastMemory)
			}
			return nil
		}
		if s.URI != "/req/"+strconv.FormatUint(k, 10) || s.LastMemory != k || s.ContentLength != int64(k) {
			return fmt.Errorf("idle after request %d but URI %q memory %d length %d", k, s.URI, s.LastMemory, s.ContentLength)
		}
	}
	return nil
}

func TestSeqlockGoroutines(t *testing.T) {
	b, err := Create(4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Reset(2, os.Getpid())
	s, err := Attach(int(b.File().Fd()), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var done atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				if err := check(b.Snapshot(2)); err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	// Write until the readers made enough copies, however the two cores
	// are shared out.
	n := 0
	for reads.Load() < 20000 && n < 1e7 {
		writeFrom(s, n+1, n+1000)
		n += 1000
	}
	done.Store(true)
	wg.Wait()
	got := b.Snapshot(2)
	if got.Requests != uint64(n) || got.Accepted != uint64(n) || got.State != Idle || got.PID != os.Getpid() {
		t.Fatalf("final snapshot %+v", got)
	}
	t.Logf("%d consistent reads during %d requests", reads.Load(), n)
}

func TestWorkerProcess(t *testing.T) {
	b, err := Create(3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetPool("www", "static")
	b.SetSlowThreshold(time.Hour)

	const n = 200000
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(n), Env(3, 1))
	cmd.ExtraFiles = []*os.File{b.File()}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.Reset(1, cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	reads, busy := 0, 0
	for running := true; running; {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("worker: %v", err)
			}
			running = false
		default:
		}
		s := b.Snapshot(1)
		if s.PID != cmd.Process.Pid {
			t.Fatalf("slot pid %d, want %d", s.PID, cmd.Process.Pid)
		}
		if err := check(s); err != nil {
			t.Fatal(err)
		}
		if s.State == Busy {
			busy++
		}
		reads++
	}
	t.Logf("%d consistent reads (%d busy) from another process", reads, busy)

	s := b.Snapshot(1)
	if s.Requests != n || s.Accepted != n || s.State != Idle || s.Method != "GET" || s.LastMemory != n || s.Slow != 0 {
		t.Fatalf("final snapshot %+v", s)
	}
	if s.Started.IsZero() || s.RequestStart.Before(s.Started) {
		t.Errorf("start times: worker %v, request %v", s.Started, s.RequestStart)
	}
	if other := b.Snapshot(0); other.PID != 0 || other.State != Free {
		t.Errorf("untouched slot: %+v", other)
	}

	b.Release(1)
	if s := b.Snapshot(1); s.PID != 0 || s.State != Free || s.Requests != 0 {
		t.Errorf("released slot: %+v", s)
	}
	h := b.Header()
	if h.Pool != "www" || h.PM != "static" || h.Requests != n || h.Accepted != n || h.SlowThreshold != time.Hour {
		t.Errorf("header %+v", h)
	}
}

func TestStates(t *testing.T) {
	b, err := Create(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Reset(0, os.Getpid())
	if s := b.Snapshot(0); s.State != Starting || s.PID != os.Getpid() {
		t.Fatalf("before attach: %+v", s)
	}
	s, err := Attach(int(b.File().Fd()), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := b.Snapshot(0).State; st != Idle {
		t.Fatalf("after attach: %v", st)
	}
	b.SetSlowThreshold(time.Nanosecond)
	s.Begin([]byte("POST"), []byte("/x?y=1"), []byte("/srv/x.lua"))
	s.Details(42, []byte("alice"))
	snap := b.Snapshot(0)
	if snap.State != Busy || snap.URI != "/x?y=1" || snap.User != "alice" || snap.ContentLength != 42 {
		t.Fatalf("busy: %+v", snap)
	}
	s.Finishing()
	if st := b.Snapshot(0).State; st != Busy {
		t.Fatalf("finishing while busy: %v", st)
	}
	s.SlowLogged()
	s.End(1 << 20)
	snap = b.Snapshot(0)
	if snap.State != Finishing || snap.Requests != 1 || snap.Slow != 1 || snap.LastMemory != 1<<20 || snap.LastDuration <= 0 {
		t.Fatalf("after end: %+v", snap)
	}
}

func TestTruncation(t *testing.T) {
	b, err := Create(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Reset(0, os.Getpid())
	s, err := Attach(int(b.File().Fd()), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	s.Begin(long, long, long)
	snap := b.Snapshot(0)
	if len(snap.Method) != methodBytes || len(snap.URI) != uriBytes || len(snap.Script) != scriptBytes || snap.URI != string(long[:uriBytes]) {
		t.Fatalf("lengths %d %d %d", len(snap.Method), len(snap.URI), len(snap.Script))
	}
	b.SetPool(string(long), string(long))
	if h := b.Header(); len(h.Pool) != poolBytes || len(h.PM) != pmBytes {
		t.Fatalf("header lengths %d %d", len(h.Pool), len(h.PM))
	}
}

// A worker killed inside a write leaves its sequence odd: readers must
// still return, and Release must repair the slot.
func TestKilledWriter(t *testing.T) {
	b, err := Create(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Reset(0, 12345)
	w := b.slot(0)
	w[sWorkerPID] = 12345
	w[sState] = uint64(Busy)
	atomic.AddUint64(&w[sSeq], 1) // a write that never finishes
	if s := b.Snapshot(0); s.State != Busy {
		t.Fatalf("snapshot %+v", s)
	}
	b.Release(0)
	if seq := atomic.LoadUint64(&w[sSeq]); seq&1 != 0 {
		t.Fatalf("sequence %d still odd", seq)
	}
	if s := b.Snapshot(0); s.State != Free {
		t.Fatalf("after release %+v", s)
	}
}

func TestAttachFromEnv(t *testing.T) {
	t.Setenv(EnvVar, "")
	os.Unsetenv(EnvVar)
	if s, err := AttachFromEnv(); s != nil || err != nil {
		t.Fatalf("unset: %v %v", s, err)
	}
	for _, v := range []string{"x", "3", "3:x", "-1:0"} {
		t.Setenv(EnvVar, v)
		if _, err := AttachFromEnv(); err == nil {
			t.Errorf("%q: no error", v)
		}
	}
	// A descriptor that is no scoreboard.
	f, err := os.CreateTemp(t.TempDir(), "not-a-board")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(make([]byte, headerBytes+slotBytes))
	if _, err := Attach(int(f.Fd()), 0); err == nil {
		t.Error("plain file attached")
	}
	b, err := Create(2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := Attach(int(b.File().Fd()), 2); err == nil {
		t.Error("slot out of range attached")
	}
	if got, want := Env(3, 7), "MAGNET_SCOREBOARD=3:7"; got != want {
		t.Errorf("Env = %q, want %q", got, want)
	}
}

func TestZeroAllocs(t *testing.T) {
	b, err := Create(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := Attach(int(b.File().Fd()), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, u, sc := []byte("GET"), []byte("/index.lua?x=1"), []byte("/srv/www/index.lua")
	allocs := testing.AllocsPerRun(1000, func() {
		s.Accepted()
		s.Begin(m, u, sc)
		s.Details(0, nil)
		s.End(4096)
		s.IdleClosed()
		s.ReadTimedOut()
		s.SendTimedOut()
		s.Refused()
		s.AcceptPaused()
		s.StatChecked(1)
		s.SlowLogged()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request", allocs)
	}
}

func BenchmarkRequest(b *testing.B) {
	board, err := Create(1)
	if err != nil {
		b.Fatal(err)
	}
	defer board.Close()
	s, err := Attach(int(board.File().Fd()), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m, u, sc := []byte("GET"), []byte("/index.lua?x=1"), []byte("/srv/www/index.lua")
	b.ReportAllocs()
	for b.Loop() {
		s.Accepted()
		s.Begin(m, u, sc)
		s.End(4096)
	}
}

func BenchmarkSnapshot(b *testing.B) {
	board, err := Create(1)
	if err != nil {
		b.Fatal(err)
	}
	defer board.Close()
	board.Reset(0, 1)
	b.ReportAllocs()
	for b.Loop() {
		board.Snapshot(0)
	}
}

func TestActiveCount(t *testing.T) {
	b, err := Create(3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var slots []*Slot
	for i := range 3 {
		b.Reset(i, os.Getpid())
		s, err := Attach(int(b.File().Fd()), i)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		slots = append(slots, s)
	}
	if h := b.Header(); h.Live != 3 || h.Active != 0 {
		t.Fatalf("start: %+v", h)
	}
	m := []byte("GET")
	slots[0].Begin(m, m, m)
	slots[1].Begin(m, m, m)
	slots[1].Begin(m, m, m) // no End in between: still one request
	slots[0].End(0)
	slots[2].Begin(m, m, m)
	if h := b.Header(); h.Active != 2 || h.MaxActive != 2 {
		t.Fatalf("busy: %+v", h)
	}
	// The worker in slot 2 dies inside its request.
	b.Release(2)
	if h := b.Header(); h.Active != 1 || h.Live != 2 || h.MaxActive != 2 {
		t.Fatalf("after release: %+v", h)
	}
	b.Release(2) // twice: nothing more
	slots[1].End(0)
	slots[1].End(0)
	if h := b.Header(); h.Active != 0 || h.Live != 2 {
		t.Fatalf("idle: %+v", h)
	}
	// Reset over an unreleased slot replaces its worker.
	b.Reset(1, 999)
	if h := b.Header(); h.Live != 2 {
		t.Fatalf("replaced: %+v", h)
	}
}

// TestContainmentFields: a worker's announced request timeout reaches its
// snapshot and is cleared for the next worker in the slot; the watchdog
// kills and max-rss recycles reach the header.
func TestContainmentFields(t *testing.T) {
	b, err := Create(2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Reset(1, os.Getpid())
	s, err := Attach(int(b.File().Fd()), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetRequestTimeout(35 * time.Second)
	if got := b.Snapshot(1).RequestTimeout; got != 35*time.Second {
		t.Errorf("request timeout %v, want 35s", got)
	}
	s.RecycledForRSS()
	b.AddWatchdogKill()
	b.AddWatchdogKill()
	if h := b.Header(); h.WatchdogKills != 2 || h.RSSRecycles != 1 {
		t.Errorf("header %+v: want 2 watchdog kills, 1 max-rss recycle", h)
	}
	b.Release(1)
	b.Reset(1, os.Getpid())
	s2, err := Attach(int(b.File().Fd()), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := b.Snapshot(1).RequestTimeout; got != 0 {
		t.Errorf("request timeout %v after a new worker attached, want 0", got)
	}
}

// TestSlowCountsLogged: "slow requests" counts what the slow log wrote,
// not requests over a duration.
func TestSlowCountsLogged(t *testing.T) {
	b, err := Create(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Reset(0, os.Getpid())
	s, err := Attach(int(b.File().Fd()), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b.SetSlowThreshold(time.Nanosecond)
	s.Begin(nil, nil, nil)
	s.End(0)
	if got := b.Snapshot(0).Slow; got != 0 {
		t.Fatalf("slow %d after a request nobody logged, want 0", got)
	}
	done := make(chan struct{})
	go func() { s.SlowLogged(); close(done) }() // the watchdog's goroutine
	<-done
	if got := b.Snapshot(0).Slow; got != 1 {
		t.Fatalf("slow %d, want 1", got)
	}
}

// TestConnCounts: a worker's connection counts show in its snapshot, and
// in the header's totals once it has left its slot (but the stat-checked
// gauge does not).
func TestConnCounts(t *testing.T) {
	b, err := Create(2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Reset(1, os.Getpid())
	s, err := Attach(int(b.File().Fd()), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.IdleClosed()
	s.IdleClosed()
	s.ReadTimedOut()
	s.SendTimedOut()
	s.Refused()
	s.Refused()
	s.Refused()
	s.AcceptPaused()
	s.StatChecked(4)
	want := Conns{IdleClosed: 2, ReadTimeouts: 1, SendTimeouts: 1, Refused: 3, AcceptPaused: 1, StatChecked: 4}
	if got := b.Snapshot(1).Conns; got != want {
		t.Fatalf("snapshot conns %+v, want %+v", got, want)
	}
	b.Release(1)
	want.StatChecked = 0
	if got := b.Header().Conns; got != want {
		t.Fatalf("header conns %+v after release, want %+v", got, want)
	}
	if got := b.Snapshot(1).Conns; got != (Conns{}) {
		t.Fatalf("released slot conns %+v", got)
	}
}
