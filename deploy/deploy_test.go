package deploy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/protocol"
)

var (
	repoRoot   string
	magnetdBin string
	workerBin  string
	workerErr  string
)

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	repoRoot = filepath.Dir(wd)
	bin := filepath.Join(repoRoot, "bin")
	os.MkdirAll(bin, 0o755)
	magnetdBin = filepath.Join(bin, "magnetd")
	if err := testutil.GoBuild(magnetdBin, "./cmd/magnetd", "CGO_ENABLED=0"); err != nil {
		fmt.Fprintf(os.Stderr, "building magnetd: %v\n", err)
		os.Exit(1)
	}
	wb := filepath.Join(bin, "magnet-worker")
	if err := testutil.GoBuild(wb, "./cmd/magnet-worker"); err != nil {
		workerErr = fmt.Sprintf("bin/magnet-worker does not build: %v", err)
		fmt.Fprintln(os.Stderr, "WARNING: "+workerErr)
	} else {
		workerBin = wb
	}
	os.Exit(m.Run())
}

func needWorker(t *testing.T) {
	t.Helper()
	if workerBin == "" {
		t.Fatal(workerErr)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
}

func needCommand(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed: %v", name, err)
	}
	return p
}

// deployFile reads a file of deploy/ and replaces strings in it; each old
// string must occur, so that a change to the file cannot skip a check.
func deployFile(t *testing.T, name string, oldnew ...string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(oldnew); i += 2 {
		if !strings.Contains(s, oldnew[i]) {
			t.Fatalf("%s no longer contains %q", name, oldnew[i])
		}
		s = strings.ReplaceAll(s, oldnew[i], oldnew[i+1])
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// docroot copies examples/ into a fresh directory readable by everyone.
func docroot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	for _, f := range []string{"123.lua"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(b))
	}
	return dir
}

func poll(timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get fetches url and returns the body of a 200 answer.
func get(url string) (string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s: %q", url, resp.Status, b)
	}
	return string(b), nil
}

// waitGet polls url until it answers want.
func waitGet(t *testing.T, url, want string) {
	t.Helper()
	var (
		body string
		err  error
	)
	if !poll(30*time.Second, func() bool { body, err = get(url); return err == nil && body == want }) {
		t.Fatalf("GET %s = %q, %v; want %q", url, body, err, want)
	}
}

// fcgiGet sends one request for script over a fresh FastCGI connection and
// returns the body.
func fcgiGet(network, addr, script string) (string, error) {
	c, err := protocol.Dial(network, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := c.Do(&protocol.Request{Params: []protocol.Pair{
		{Name: "SCRIPT_FILENAME", Value: script},
		{Name: "SCRIPT_NAME", Value: "/" + filepath.Base(script)},
		{Name: "REQUEST_METHOD", Value: "GET"},
	}})
	if err != nil {
		return "", err
	}
	if resp.AppStatus != 0 || resp.ProtocolStatus != 0 {
		return "", fmt.Errorf("status %d/%d", resp.AppStatus, resp.ProtocolStatus)
	}
	_, _, body, err := protocol.ParseCGI(resp.Stdout)
	return string(body), err
}

// load sends requests over fresh connections from several goroutines
// until stop; every failure counts.
type load struct {
	mu       sync.Mutex
	ok, fail int
	errs     []string
	stopc    chan struct{}
	wg       sync.WaitGroup
}

func startLoad(network, addr, script, want string, n int) *load {
	l := &load{stopc: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stopc:
					return
				default:
				}
				body, err := fcgiGet(network, addr, script)
				if err == nil && body != want {
					err = fmt.Errorf("body %q", body)
				}
				l.mu.Lock()
				if err != nil {
					l.fail++
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
				} else {
					l.ok++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) stop() string {
	close(l.stopc)
	l.wg.Wait()
	return fmt.Sprintf("ok=%d failed=%d errors=%q", l.ok, l.fail, l.errs)
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// daemon runs a long-lived server process for the test's duration.
func daemon(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(name)+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("%s output:\n%s", name, b)
		}
	})
	return cmd
}
