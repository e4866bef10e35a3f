package devhttp

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// workerBin is the real magnet-worker built by TestMain; empty when the
// build failed, with the reason in workerErr (the tests using it fail).
var workerBin, workerErr string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "devhttp-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	workerBin = filepath.Join(dir, "magnet-worker")
	if err := testutil.GoBuild(workerBin, "./cmd/magnet-worker"); err != nil {
		workerBin, workerErr = "", err.Error()
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startWorker runs the real worker on a unix socket with docroot and
// returns a dial function for it.
func startWorker(t *testing.T, docroot string) func() (net.Conn, error) {
	t.Helper()
	if workerBin == "" {
		t.Fatal("magnet-worker did not build: " + workerErr)
	}
	sock := filepath.Join(t.TempDir(), "worker.sock")
	cmd := exec.Command(workerBin, "--listen", sock, "--docroot", docroot)
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", logs)
		}
	})
	dial := func() (net.Conn, error) { return net.Dial("unix", sock) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := dial()
		if err == nil {
			c.Close()
			return dial
		}
		select {
		case <-done:
			t.Fatalf("worker exited: %s", logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not listening after 30 s: %v\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRealWorkerSeed(t *testing.T) {
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(examples, startWorker(t, examples))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv := httptest.NewServer(f)
	defer srv.Close()
	resp, body := get(t, srv.URL+"/123.lua")
	if resp.StatusCode != 200 || body != "123" || resp.Header.Get("Content-Length") != "3" || resp.Header.Get("Content-Type") != "text/html" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestRealWorkerCGI(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"env.lua": `print("Content-Type: text/plain\r\n\r\n")
print(os.getenv("SCRIPT_NAME"), "|", os.getenv("PATH_INFO") or "-", "|", os.getenv("QUERY_STRING"), "|",
  os.getenv("REQUEST_METHOD"), "|", os.getenv("HTTP_X_TEST") or "-", "|", io.read("*a") or "")
`,
		"go.lua":        `print("Location: /env.lua/after?r=1\r\n\r\n")`,
		"app/index.lua": `print("Status: 201\r\nContent-Type: text/plain\r\n\r\nindex")`,
		"page.html":     "<p>static</p>",
	})
	srv := serveFront(t, root, startWorker(t, root))

	req, _ := http.NewRequest("POST", srv.URL+"/env.lua/p/i?a=b", strings.NewReader("the body"))
	req.Header.Set("X-Test", "yes")
	resp, body := do(t, req)
	if want := "/env.lua|/p/i|a=b|POST|yes|the body"; resp.StatusCode != 200 || body != want {
		t.Errorf("env.lua: %d %q, want %q", resp.StatusCode, body, want)
	}
	resp, body = get(t, srv.URL+"/go.lua")
	if want := "/env.lua|/after|r=1|GET|-|"; resp.StatusCode != 200 || body != want {
		t.Errorf("local redirect: %d %q, want %q", resp.StatusCode, body, want)
	}
	resp, body = get(t, srv.URL+"/app/")
	if resp.StatusCode != 201 || body != "index" {
		t.Errorf("index: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, srv.URL+"/page.html")
	if resp.StatusCode != 200 || body != "<p>static</p>" {
		t.Errorf("static: %d %q", resp.StatusCode, body)
	}

	// Concurrent requests share a few kept connections to one worker.
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(fmt.Sprintf("%s/env.lua?n=%d", srv.URL, i))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			buf := new(bytes.Buffer)
			_, err = buf.ReadFrom(resp.Body)
			if want := fmt.Sprintf("|n=%d|GET|", i); err != nil || resp.StatusCode != 200 || !strings.Contains(buf.String(), want) {
				errs <- fmt.Sprintf("request %d: %d %q %v", i, resp.StatusCode, buf.String(), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
