package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// Generous limits for a noisy 2-core CI machine.
const (
	startTimeout = 20 * time.Second // a server or worker becomes ready
	exitTimeout  = 15 * time.Second // a process exits after a signal
	pollEvery    = 20 * time.Millisecond
)

// proc is a process started by a test, in a process group of its own.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer // stdout and stderr together
	done chan struct{}
	err  error // the result of Wait, valid once done is closed
}

// startProc starts a process and registers a cleanup that kills it and all
// its descendants and logs its output when the test failed. Before start,
// setup (if not nil) may adjust the command (environment, extra files).
func startProc(t *testing.T, name string, args []string, setup func(*exec.Cmd)) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	p := &proc{name: filepath.Base(name), cmd: cmd, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if setup != nil {
		setup(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		killTree(cmd.Process.Pid)
		select {
		case <-p.done:
		case <-time.After(exitTimeout):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, cmd.Process.Pid)
		}
		if t.Failed() {
			out := p.out.String()
			if len(out) > 8<<10 {
				out = "...\n" + out[len(out)-8<<10:]
			}
			t.Logf("output of %s (pid %d):\n%s", p.name, cmd.Process.Pid, out)
		}
	})
	return p
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to end and returns its exit
// code (-1 when killed by a signal).
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s (pid %d) still running after %v", p.name, p.pid(), timeout)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("%s: wait: %v", p.name, p.err)
	return -1
}

// killTree sends SIGKILL to pid, its process group and all its
// descendants, found before the first kill.
func killTree(pid int) {
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		all = append(all, testutil.Children(all[i], "")...)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, p := range all {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// waitFor polls cond until it returns nil, failing the test with the last
// error after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after %v: %v", what, timeout, err)
		}
		time.Sleep(pollEvery)
	}
}

// errExited says that a process ended before it listened.
var errExited = errors.New("process exited")

// tryDial waits until network/address accepts connections; it gives up
// with errExited when p (if not nil) ends first.
func tryDial(p *proc, network, address string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if p != nil && p.exited() {
			return fmt.Errorf("%s: %w before listening on %s: %v", p.name, errExited, address, p.err)
		}
		c, err := net.DialTimeout(network, address, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dial %s: not ready after %v: %w", address, startTimeout, err)
		}
		time.Sleep(pollEvery)
	}
}

// waitDial waits until network/address accepts connections, failing early
// when p (if not nil) exits first.
func waitDial(t *testing.T, p *proc, network, address string) {
	t.Helper()
	if err := tryDial(p, network, address); err != nil {
		out := ""
		if p != nil {
			out = p.out.String()
		}
		t.Fatalf("%v\n%s", err, out)
	}
}

// startOnFreePort starts a server on a free loopback TCP port: start gets
// the port and returns the process. When another process takes the port
// between testutil.FreePort and the server's bind, the server exits and is started
// again on another port.
func startOnFreePort(t *testing.T, start func(port int) *proc) (*proc, int) {
	t.Helper()
	for try := 1; ; try++ {
		port := testutil.FreePort(t)
		p := start(port)
		err := tryDial(p, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return p, port
		}
		if try < 3 && errors.Is(err, errExited) && strings.Contains(p.out.String(), "in use") {
			t.Logf("port %d taken, trying another: %v", port, err)
			continue
		}
		t.Fatalf("%v\n%s", err, p.out.String())
	}
}

// rssKiB returns VmRSS of pid in KiB.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("rss: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.Atoi(f[0])
				if err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("rss: no VmRSS in /proc/%d/status", pid)
	return 0
}
