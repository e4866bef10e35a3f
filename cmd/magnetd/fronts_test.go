package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

func httpGet(url string) (string, http.Header, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), resp.Header, err
}

// TestHTTPFront runs magnetd --http with its own private socket, the status
// page, ping and an access log.
func TestHTTPFront(t *testing.T) {
	needWorker(t)
	dir := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(repoRoot, "examples", "123.lua"))
	os.WriteFile(filepath.Join(dir, "123.lua"), b, 0o644)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	statusAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	access := filepath.Join(t.TempDir(), "access.log")
	m := startMaster(t, nil, nil, "-n", "-F", "2", "--http", httpAddr, "--docroot", dir,
		"--status-listen", statusAddr, "--status-path", "/status", "--ping-path", "/ping", "--access-log", access)
	var (
		body string
		err  error
	)
	if !poll(30*time.Second, func() bool { body, _, err = httpGet("http://" + httpAddr + "/123.lua"); return err == nil }) || body != "123" {
		t.Fatalf("GET /123.lua = %q, %v", body, err)
	}
	for range 5 {
		httpGet("http://" + httpAddr + "/123.lua")
	}
	if body, _, err = httpGet("http://" + httpAddr + "/ping"); err != nil || strings.TrimSpace(body) != "pong" {
		t.Errorf("ping: %q, %v", body, err)
	}
	// The status page: text and JSON, on --status-listen and --status-path.
	for _, url := range []string{"http://" + statusAddr + "/status", "http://" + httpAddr + "/status"} {
		var st map[string]any
		if !poll(10*time.Second, func() bool {
			body, _, err = httpGet(url + "?json")
			st = nil
			return err == nil && json.Unmarshal([]byte(body), &st) == nil && st["accepted conn"].(float64) >= 1
		}) {
			t.Fatalf("%s?json = %q, %v", url, body, err)
		}
		if st["pool"] != poolName || st["process manager"] != "static" || st["total processes"].(float64) != 2 {
			t.Errorf("status %v", st)
		}
		text, _, err := httpGet(url)
		if err != nil || !strings.Contains(text, "listen queue len:") || !strings.Contains(text, "max children reached:") {
			t.Errorf("status text %q, %v", text, err)
		}
	}
	prom, _, err := httpGet("http://" + statusAddr + "/status?openmetrics")
	if err != nil || !strings.Contains(prom, "accepted") {
		t.Errorf("prometheus status %q, %v", prom, err)
	}

	// The access log, and SIGUSR1 reopening it.
	if !poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(access)
		return strings.Contains(string(b), `"GET /123.lua HTTP/1.1" 200 3`)
	}) {
		b, _ := os.ReadFile(access)
		t.Errorf("access log: %q", b)
	}
	os.Rename(access, access+".1")
	m.signal(syscall.SIGUSR1)
	m.waitLog("log files reopened", 10*time.Second)
	httpGet("http://" + httpAddr + "/123.lua")
	if !poll(10*time.Second, func() bool { b, _ := os.ReadFile(access); return len(b) > 0 }) {
		t.Errorf("access log not reopened")
	}

	// The private socket goes away with magnetd.
	sockLine := lines(m.out.String(), "listen=unix:")
	m.signal(sigterm)
	if code := m.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if len(sockLine) == 0 {
		t.Fatalf("no listen line in the log")
	}
	path := strings.Fields(sockLine[0][strings.Index(sockLine[0], "listen=unix:")+len("listen=unix:"):])[0]
	if _, err := os.Stat(filepath.Dir(path)); err == nil {
		t.Errorf("private socket directory %s left behind", filepath.Dir(path))
	}
}

// TestStatusThroughSocket asks magnet-worker for --status-path and
// --ping-path through the FastCGI socket, as a web server would.
func TestStatusThroughSocket(t *testing.T) {
	needWorker(t)
	sock := filepath.Join(t.TempDir(), "m.sock")
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "2", "--status-path", "/fpm-status", "--ping-path", "/fpm-ping")
	waitChildren(t, m.pid(), 2, 30*time.Second)
	var (
		body string
		err  error
	)
	if !poll(30*time.Second, func() bool { body, err = request("unix", sock, "/fpm-status", ""); return err == nil }) {
		t.Fatalf("status: %v", err)
	}
	if !strings.Contains(body, "pool:") || !strings.Contains(body, "total processes:") {
		t.Errorf("status body %q", body)
	}
	if body, err = request("unix", sock, "/fpm-ping", ""); err != nil || strings.TrimSpace(body) != "pong" {
		t.Errorf("ping: %q, %v", body, err)
	}
}
