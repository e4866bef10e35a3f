package worker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/protocol"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// The flood test runs one worker in a child process (this test binary
// again, as TestFloodWorkerProcess) so that it can have a low
// RLIMIT_NOFILE of its own while the test holds thousands of descriptors.

const floodEnv = "MAGNET_TEST_FLOOD_WORKER" // "maxconns nofile" in the child

// TestFloodWorkerProcess is the child's side: a worker on fd 3 with a low
// descriptor limit, logging at debug level to stderr. It answers the
// SCRIPT_NAME /who with "child". Outside the flood test it does nothing.
func TestFloodWorkerProcess(t *testing.T) {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		return
	}
	var maxConns, nofile int
	if _, err := fmt.Sscan(spec, &maxConns, &nofile); err != nil {
		t.Fatal(err)
	}
	lim := unix.Rlimit{Cur: uint64(nofile), Max: uint64(nofile)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(Config{ListenFD: 3, MaxConns: maxConns, Logger: log, Special: who("child")})
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() { <-sigs; srv.Shutdown() }()
	fmt.Fprintln(os.Stderr, "child serving")
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
}

// who answers the SCRIPT_NAME /who with name.
func who(name string) func(scriptName, query []byte) []byte {
	page := []byte("Content-Type: text/plain\r\n\r\n" + name)
	return func(scriptName, _ []byte) []byte {
		if string(scriptName) == "/who" {
			return page
		}
		return nil
	}
}

// cpuTicks is the user and system time of process pid, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:])) // fields from 3 on
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// TestFloodOfIdleConnections: 5,000 idle connections against a worker
// with a low --max-conns, or a descriptor limit below it: the worker stops
// accepting instead of spinning on EMFILE, stays idle, logs the limit at
// most once, lets another worker serve new clients, and serves again
// once its connections close.
func TestFloodOfIdleConnections(t *testing.T) {
	const n = 5000
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*n+200 {
		t.Fatalf("RLIMIT_NOFILE %d: the test needs %d descriptors", lim.Cur, 2*n+200)
	}
	for _, tc := range []struct {
		name           string
		maxConns, nofi int
		log            string // the child's line when it stops accepting
	}{
		{"max-conns", 50, 256, "connection cap reached"},
		{"EMFILE", 1000, 100, "out of file descriptors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "f.sock")
			fd, err := Listen(sock, 4096)
			if err != nil {
				t.Fatal(err)
			}
			lf := os.NewFile(uintptr(fd), "listener")
			cmd := testutil.SelfCommand("-test.run=^TestFloodWorkerProcess$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d", floodEnv, tc.maxConns, tc.nofi))
			cmd.ExtraFiles = []*os.File{lf}
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var lines []string
			events := make(chan string, 16)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					mu.Lock()
					lines = append(lines, sc.Text())
					mu.Unlock()
					for _, ev := range []string{"child serving", tc.log, "accepting again"} {
						if strings.Contains(sc.Text(), ev) {
							select {
							case events <- ev:
							default:
							}
						}
					}
				}
				close(events)
			}()
			waitFor := func(ev string) {
				t.Helper()
				timeout := time.After(20 * time.Second)
				for {
					select {
					case got, ok := <-events:
						if !ok {
							t.Fatalf("child exited before %q", ev)
						}
						if got == ev {
							return
						}
					case <-timeout:
						t.Fatalf("child: no %q in 20s", ev)
					}
				}
			}
			defer func() {
				cmd.Process.Signal(syscall.SIGTERM)
				cmd.Wait()
				if t.Failed() {
					mu.Lock()
					t.Logf("child's log:\n%s", strings.Join(lines, "\n"))
					mu.Unlock()
				}
			}()
			waitFor("child serving")

			// this process's worker takes what the child leaves
			parent, err := New(Config{ListenFD: fd, MaxConns: 2 * n, Special: who("parent")})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- parent.Serve() }()
			parentRunning := true
			stopParent := func() {
				parent.Shutdown()
				if err := <-done; err != nil {
					t.Error(err)
				}
				parent.Close()
				parentRunning = false
			}
			defer func() {
				if parentRunning {
					stopParent()
				}
			}()

			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			deadline := time.Now().Add(60 * time.Second)
			for i := 0; i < n; i++ {
				c, err := net.Dial("unix", sock)
				if errors.Is(err, unix.EAGAIN) && time.Now().Before(deadline) {
					// the backlog is full until the other worker takes more
					time.Sleep(time.Millisecond)
					i--
					continue
				}
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				conns = append(conns, c)
			}
			waitFor(tc.log)

			// The child holds what it could take and does nothing more:
			// its CPU time over a second stays near zero.
			pid := cmd.Process.Pid
			before := cpuTicks(t, pid)
			time.Sleep(time.Second)
			used := cpuTicks(t, pid) - before
			t.Logf("the paused child used %d CPU ticks in a second, holding its connections", used)
			if used > 5 {
				t.Errorf("the paused child used %d ticks of CPU in a second", used)
			}

			// a new client is served meanwhile, by the other worker
			c := dial(t, sock)
			c.SetDeadline(time.Now().Add(20 * time.Second))
			resp, err := c.Do(&protocol.Request{Params: []protocol.Pair{{Name: "SCRIPT_NAME", Value: "/who"}}})
			if err != nil {
				t.Fatalf("a client during the flood: %v", err)
			}
			if !bytes.HasSuffix(resp.Stdout, []byte("parent")) {
				t.Fatalf("a client during the flood: %q", resp.Stdout)
			}

			// Once the flood is gone and the other worker stopped, the
			// child serves new clients.
			for _, c := range conns {
				c.Close()
			}
			conns = conns[:0]
			stopParent()
			if tc.name == "max-conns" {
				waitFor("accepting again")
			}
			c2 := dial(t, sock)
			c2.SetDeadline(time.Now().Add(20 * time.Second))
			resp, err = c2.Do(&protocol.Request{Params: []protocol.Pair{{Name: "SCRIPT_NAME", Value: "/who"}}})
			if err != nil {
				t.Fatalf("a client after the flood: %v", err)
			}
			if !bytes.HasSuffix(resp.Stdout, []byte("child")) {
				t.Fatalf("a client after the flood: %q", resp.Stdout)
			}
			mu.Lock()
			warns := strings.Count(strings.Join(lines, "\n"), "level=WARN")
			mu.Unlock()
			if warns > 1 {
				t.Errorf("%d warnings logged, want at most 1", warns)
			}
		})
	}
}
