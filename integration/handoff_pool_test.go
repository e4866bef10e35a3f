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
	"github.com/magnet-fcgi/magnet/protocol"
)

// fcgiPool is magnetd -F 4 on a unix socket, with its workers' socket
// counts before any client connected.
type fcgiPool struct {
	m       *proc
	socket  string
	docroot string
	base    map[int]int // worker pid: sockets it held with no client
}

// startFCGIPool starts magnetd -F 4 with args (magnetd's flags) in front of
// magnet-worker, and waits until the four workers serve.
func startFCGIPool(t *testing.T, args ...string) *fcgiPool {
	t.Helper()
	needWorker(t)
	magnetd := buildMagnetd(t)
	dir := t.TempDir()
	p := &fcgiPool{socket: filepath.Join(dir, "m.sock"), docroot: makeDocroot(t)}
	argv := append([]string{"-n", "-s", p.socket, "-F", "4"}, args...)
	argv = append(argv, "--", workerBin, "--docroot", p.docroot)
	p.m = startProc(t, magnetd, argv, nil)
	waitDial(t, p.m, "unix", p.socket)
	if !waitUntil(30*time.Second, func() bool {
		return len(testutil.Children(p.m.pid(), "magnet-worker")) == 4
	}) {
		t.Fatalf("magnetd's workers did not start:\n%s", p.m.out.String())
	}
	// Each worker logs "serving" once it serves; its sockets then are the
	// listening socket and its hand-off channel.
	if !waitUntil(30*time.Second, func() bool {
		return strings.Count(p.m.out.String(), "msg=serving") >= 4
	}) {
		t.Fatalf("the four workers did not all serve:\n%s", p.m.out.String())
	}
	var last map[int]int
	waitUntil(time.Second, func() bool {
		now := p.socketCounts()
		same := sameCounts(now, last)
		last = now
		return same
	})
	p.base = last
	return p
}

func sameCounts(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// socketCounts counts the sockets each worker has open, by its /proc fds.
func (p *fcgiPool) socketCounts() map[int]int {
	out := map[int]int{}
	for _, pid := range testutil.Children(p.m.pid(), "magnet-worker") {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		n := 0
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				n++
			}
		}
		out[pid] = n
	}
	return out
}

// holding is how many client connections each worker holds, sorted.
func (p *fcgiPool) holding() []int {
	var out []int
	for pid, n := range p.socketCounts() {
		out = append(out, n-p.base[pid])
	}
	slices.Sort(out)
	return out
}

// dialAll opens n FastCGI connections to the pool at once.
func (p *fcgiPool) dialAll(t *testing.T, n int) []*protocol.Client {
	t.Helper()
	cs := make([]*protocol.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs[i], errs[i] = dialFCGI(p.socket)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs[i].Close() })
	}
	return cs
}

// waitBalanced waits until the 16 connections are held 4 by each worker,
// and says how long that took and the first split seen.
func (p *fcgiPool) waitBalanced(t *testing.T, since time.Time, limit time.Duration) (time.Duration, []int) {
	t.Helper()
	var first, last []int
	want := []int{4, 4, 4, 4}
	if !waitUntil(limit, func() bool {
		last = p.holding()
		if first == nil && sum(last) == 16 {
			first = last
		}
		return slices.Equal(last, want)
	}) {
		t.Fatalf("connections per worker %v after %v (first complete split %v); want %v\n%s", last, limit, first, want, tail(p.m.out.String(), 4000))
	}
	return time.Since(since), first
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// TestHandoffBalance opens 16 connections at once to four workers: however
// they were accepted, magnetd's balance moves them until each worker holds
// 4. The issue asks for 100 ms; on a shared machine the test allows 3 s
// and logs the time taken.
func TestHandoffBalance(t *testing.T) {
	p := startFCGIPool(t)
	start := time.Now()
	cs := p.dialAll(t, 16)
	took, first := p.waitBalanced(t, start, 3*time.Second)
	t.Logf("16 connections balanced 4/4/4/4 in %v (first complete split %v)", took.Round(time.Millisecond), first)
	// Every connection still serves, from the worker it moved to.
	owners := map[string]int{}
	for _, c := range cs {
		r, err := fcgiGet(c, filepath.Join(p.docroot, "pid.lua"), "")
		if err != nil || r.status != 200 {
			t.Fatalf("pid.lua on a moved connection: %+v %v", r, err)
		}
		owners[r.body]++
	}
	var split []int
	for _, n := range owners {
		split = append(split, n)
	}
	slices.Sort(split)
	if !slices.Equal(split, []int{4, 4, 4, 4}) {
		t.Errorf("the workers answering the connections split them %v; want 4 each", split)
	}
}

// listenQueue is how many connections wait in the kernel for an accept on
// the unix socket path, by ss.
func listenQueue(t *testing.T, path string) int {
	t.Helper()
	testutil.LookPath(t, "ss", "iproute2")
	out, err := exec.Command("ss", "-xlnH").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[4] == path {
			n, _ := strconv.Atoi(f[2])
			return n
		}
	}
	t.Fatalf("ss shows no listening socket %s:\n%s", path, out)
	return 0
}

// TestHandoffBalanceSkewed forces the worst split: three of the four
// workers are stopped (SIGSTOP) while 16 connections open, so one worker
// accepted them all; once the others continue,
// the connections end up 4 on each.
func TestHandoffBalanceSkewed(t *testing.T) {
	p := startFCGIPool(t)
	ws := testutil.Children(p.m.pid(), "magnet-worker")
	for _, pid := range ws[1:] {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	}
	p.dialAll(t, 16)
	// A stopped worker accepts nothing: once the listening socket's queue
	// is empty, the running worker has accepted all 16 (the balance may
	// already be relaying some into the others' channels).
	if !waitUntil(10*time.Second, func() bool { return listenQueue(t, p.socket) == 0 }) {
		t.Fatalf("the running worker did not accept the connections: %d queued", listenQueue(t, p.socket))
	}
	start := time.Now()
	for _, pid := range ws[1:] {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	took, _ := p.waitBalanced(t, start, 3*time.Second)
	t.Logf("16 connections accepted by one worker balanced 4/4/4/4 %v after the other three continued", took.Round(time.Millisecond))
}

// TestHandoffHeadOfLine runs a 5 s busy script every 6 s on one of 16
// keep-alive connections while the other 15 run 123.lua: the busy
// worker's other connections move to idle workers after --handoff-after,
// so no 123.lua waits for the busy script. The bound (p99 under
// 20 ms, max under 100 ms) is logged; on a shared 2-core machine the test
// asserts max under 1 s, where a request stuck behind the script takes
// seconds, as the run with --handoff-after 0 shows first.
func TestHandoffHeadOfLine(t *testing.T) {
	if raceEnabled {
		// A latency test: it runs in the plain test run, once, so that
		// the race run's slower clients do not time it as well.
		t.Skip("latency test: runs without -race")
	}
	cycles := 2
	if v := os.Getenv("MAGNET_HOL_CYCLES"); v != "" {
		cycles, _ = strconv.Atoi(v)
	}
	t.Run("off", func(t *testing.T) {
		lat := runHeadOfLine(t, 1, "--handoff-after", "0")
		if lat[len(lat)-1] < time.Second {
			t.Fatalf("without the hand-off the slowest 123.lua took %v: the busy script blocked nothing, so the test proves nothing", lat[len(lat)-1])
		}
	})
	t.Run("on", func(t *testing.T) {
		lat := runHeadOfLine(t, cycles)
		if max := lat[len(lat)-1]; max >= time.Second {
			t.Fatalf("a 123.lua took %v behind the busy script", max)
		}
	})
}

// runHeadOfLine runs the head-of-line load on a fresh pool and returns the
// 123.lua latencies, sorted: the shape, one connection running a
// 5 s busy script every 6 s (MAGNET_HOL_BUSY changes the 5 s) while the
// other 15 run 123.lua. A 123.lua slower than 100 ms is logged with its
// connection and its time relative to the busy scripts.
func runHeadOfLine(t *testing.T, cycles int, args ...string) []time.Duration {
	busyFor := 5 * time.Second
	if v := os.Getenv("MAGNET_HOL_BUSY"); v != "" {
		var err error
		if busyFor, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	p := startFCGIPool(t, args...)
	cs := p.dialAll(t, 16)
	p.waitBalanced(t, time.Now(), 10*time.Second)

	type slow struct {
		conn int
		at   time.Time
		took time.Duration
	}
	var (
		mu    sync.Mutex
		lat   []time.Duration
		slows []slow
		errs  []error
		wg    sync.WaitGroup
		done  = make(chan struct{})
	)
	script := filepath.Join(p.docroot, "123.lua")
	for i, c := range cs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			for {
				select {
				case <-done:
					return
				default:
				}
				t0 := time.Now()
				if err := check123FCGI(fcgiGet(c, script, "")); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				d := time.Since(t0)
				mine = append(mine, d)
				if d > 100*time.Millisecond {
					mu.Lock()
					slows = append(slows, slow{i + 1, t0, d})
					mu.Unlock()
				}
			}
		}()
	}
	busy := filepath.Join(p.docroot, "pid.lua")
	every := time.NewTicker(busyFor + time.Second)
	defer every.Stop()
	var starts []time.Time
	for i := range cycles {
		starts = append(starts, time.Now())
		if r, err := fcgiGet(cs[0], busy, strconv.Itoa(int(busyFor.Milliseconds()))); err != nil || r.status != 200 {
			t.Errorf("busy script %d: %+v %v", i, r, err)
		}
		<-every.C
	}
	close(done)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d 123.lua requests failed: %v\n%s", len(errs), errs[0], tail(p.m.out.String(), 4000))
	}
	if len(lat) < 100 {
		t.Fatalf("only %d 123.lua requests answered: the load did not run", len(lat))
	}
	for _, s := range slows {
		rel := s.at.Sub(starts[0])
		for _, b := range starts {
			if s.at.After(b) {
				rel = s.at.Sub(b)
			}
		}
		t.Logf("slow 123.lua on connection %d: %v, begun %v after the busy script's start", s.conn, s.took.Round(time.Millisecond), rel.Round(time.Millisecond))
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))].Round(10 * time.Microsecond) }
	t.Logf("%d × 123.lua beside %d busy scripts of %v: p50 %v p99 %v p99.9 %v max %v", len(lat), cycles, busyFor, q(0.5), q(0.99), q(0.999), lat[len(lat)-1].Round(10*time.Microsecond))
	return lat
}
