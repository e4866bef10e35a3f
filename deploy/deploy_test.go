package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	// The workers run as www-data (-u), as the examples deploy them.
	os.Chmod(filepath.Dir(dir), 0o755)
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

// fcgiLoad keeps n clients sending requests for script over fresh
// connections until stopped; any answer but want counts as a failure.
func fcgiLoad(network, addr, script, want string, n int) *testutil.Load {
	return testutil.StartLoad(n, func() error {
		body, err := fcgiGet(network, addr, script)
		if err == nil && body != want {
			err = fmt.Errorf("body %q", body)
		}
		return err
	})
}

// newWorkers reports whether master runs n magnet-workers and none of old:
// a reload is over.
func newWorkers(master int, old []int, n int) bool {
	now := testutil.Children(master, "magnet-worker")
	return len(now) == n && !slices.ContainsFunc(now, func(p int) bool { return slices.Contains(old, p) })
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
