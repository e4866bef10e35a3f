package integration

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// standalone is a magnet-worker started with --listen on a unix socket.
type standalone struct {
	proc    *proc
	socket  string
	docroot string
}

// startWorker starts magnet-worker --listen <tmp>/w.sock with the extra
// environment given, and waits until it accepts connections.
func startWorker(t *testing.T, env ...string) *standalone {
	t.Helper()
	needWorker(t)
	w := &standalone{socket: filepath.Join(t.TempDir(), "w.sock"), docroot: makeDocroot(t)}
	w.proc = startProc(t, workerBin, []string{"--listen", w.socket}, func(c *exec.Cmd) {
		c.Env = append(os.Environ(), env...)
	})
	waitDial(t, w.proc, "unix", w.socket)
	return w
}

// script returns the absolute path of a script in the worker's docroot.
func (w *standalone) script(name string) string { return filepath.Join(w.docroot, name) }

// dial opens a FastCGI connection to the worker.
func (w *standalone) dial(t *testing.T) *protocol.Client {
	t.Helper()
	c, err := protocol.Dial("unix", w.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGracefulSignals: SIGTERM, SIGINT and SIGUSR1 during a slow request
// let the request finish, close idle keep-alive connections, and end the
// worker with status 0.
func TestGracefulSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1} {
		t.Run(sig.String(), func(t *testing.T) {
			w := startWorker(t)
			idle := w.dial(t)
			if err := check123FCGI(fcgiGet(idle, w.script("123.lua"), "")); err != nil {
				t.Fatal(err)
			}
			busy := w.dial(t)
			marker := filepath.Join(t.TempDir(), "started")
			type result struct {
				r   fcgiResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := fcgiGet(busy, w.script("slow.lua"), "", protocol.Pair{Name: "MARKER", Value: marker})
				done <- result{r, err}
			}()
			waitFor(t, startTimeout, "slow.lua running", func() error {
				_, err := os.Stat(marker)
				return err
			})
			start := time.Now()
			if err := syscall.Kill(w.proc.pid(), sig); err != nil {
				t.Fatal(err)
			}
			var res result
			select {
			case res = <-done:
			case <-time.After(requestTimeout):
				t.Fatalf("slow.lua did not answer after %v", sig)
			}
			if res.err != nil || res.r.status != 200 || res.r.body != "slow done" {
				t.Fatalf("slow.lua interrupted by %v: status %d body %q: %v", sig, res.r.status, res.r.body, res.err)
			}
			if code := w.proc.wait(t, exitTimeout); code != 0 {
				t.Fatalf("worker exited with %d after %v, want 0", code, sig)
			}
			t.Logf("%v: request finished and worker exited %v after the signal", sig, time.Since(start).Round(time.Millisecond))
			// The idle keep-alive connection was closed, not left hanging.
			idle.SetDeadline(time.Now().Add(exitTimeout))
			if _, err := fcgiGet(idle, w.script("123.lua"), ""); err == nil {
				t.Errorf("a request on an idle keep-alive connection succeeded after the worker exited")
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Logf("idle connection after exit: %v", err)
			}
		})
	}
}

// TestSignalUnderBusyPoll: a worker busy polling for the next request of
// a client that sends them back to back still stops promptly on SIGTERM;
// every request it took gets its whole answer, and the worker exits 0.
func TestSignalUnderBusyPoll(t *testing.T) {
	w := startWorker(t, "MAGNET_BUSY_POLL=1ms")
	c := w.dial(t)
	stop := make(chan struct{})
	flowing := make(chan struct{}) // closed once requests come back to back
	answered := make(chan int, 1)
	go func() {
		n := 0
		defer func() { answered <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := fcgiGet(c, w.script("123.lua"), "")
			if err != nil {
				return // closed by the stopping worker, between requests
			}
			if err := check123FCGI(r, nil); err != nil {
				t.Errorf("request %d: %v", n+1, err)
				return
			}
			n++
			if n == 200 {
				close(flowing)
			}
		}
	}()
	select {
	case <-flowing:
	case n := <-answered:
		t.Fatalf("the client stopped after %d requests, before the signal", n)
	case <-time.After(exitTimeout):
		t.Fatal("requests do not flow")
	}
	start := time.Now()
	if err := syscall.Kill(w.proc.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := w.proc.wait(t, exitTimeout)
	took := time.Since(start)
	close(stop)
	n := <-answered
	if code != 0 {
		t.Fatalf("worker exited with %d, want 0", code)
	}
	if n == 0 {
		t.Fatal("no request answered before the signal")
	}
	if took > 2*time.Second {
		t.Errorf("worker took %v to stop after SIGTERM", took)
	}
	t.Logf("%d requests answered; stopped %v after SIGTERM", n, took.Round(time.Millisecond))
}

// TestMaxRequests: PHP_FCGI_MAX_REQUESTS=N ends the worker with status 0
// after N requests.
func TestMaxRequests(t *testing.T) {
	const n = 3
	w := startWorker(t, fmt.Sprintf("PHP_FCGI_MAX_REQUESTS=%d", n))
	for i := 0; i < n; i++ {
		if err := check123FCGI(fcgiOnce("unix", w.socket, w.script("123.lua"), "")); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	if code := w.proc.wait(t, exitTimeout); code != 0 {
		t.Fatalf("worker exited with %d after %d requests, want 0", code, n)
	}
}

// TestNeedsListenSocket: without --listen and without a listening socket
// on fd 0 the worker exits with status 1 and says why.
func TestNeedsListenSocket(t *testing.T) {
	needWorker(t)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	p := startProc(t, workerBin, nil, func(c *exec.Cmd) { c.Stdin = devnull })
	if code := p.wait(t, exitTimeout); code != 1 {
		t.Fatalf("worker with /dev/null on fd 0 exited with %d, want 1; output:\n%s", code, p.out.String())
	}
	if p.out.String() == "" {
		t.Errorf("worker exited 1 without a message on stderr")
	}
}
