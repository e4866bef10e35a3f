package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/protocol"
)

// TestSessionsShared: examples/sessions.lua as shipped keeps its sessions
// in magnet.shared, so on one host a session carries on whichever worker
// answers: magnetd -F 4, a new connection per request.
func TestSessionsShared(t *testing.T) {
	needWorker(t)
	magnetd := buildMagnetd(t)
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(repoRoot, "examples", "sessions.lua"))
	if err != nil {
		t.Fatal(err)
	}
	// the example as shipped, and a line that names the worker answering
	script := filepath.Join(dir, "sessions.lua")
	writeFile(t, script, string(src)+`magnet.header["X-Worker"] = io.open("/proc/self/stat"):read("*n")`+"\n")
	sock := filepath.Join(dir, "m.sock")
	m := startProc(t, magnetd, []string{"-n", "-s", sock, "-F", "4", "--shared", "sessions=1M", "--docroot", dir}, nil)
	waitDial(t, m, "unix", sock)
	// keep-alive connections, which spread over the workers
	conns := make([]*protocol.Client, 8)
	for i := range conns {
		c, err := protocol.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	workers := map[string]bool{}
	sid := ""
	for i := 1; i <= 40; i++ {
		c := conns[i%len(conns)]
		var extra []protocol.Pair
		if sid != "" {
			extra = append(extra, protocol.Pair{Name: "HTTP_COOKIE", Value: "sid=" + sid})
		}
		r, err := fcgiGet(c, script, "", extra...)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("visits %d", i); r.status != 200 || strings.TrimSpace(r.body) != want {
			t.Fatalf("request %d: %d %q, want %q", i, r.status, r.body, want)
		}
		resp := http.Response{Header: r.header}
		for _, ck := range resp.Cookies() {
			if ck.Name == "sid" {
				if sid != "" && ck.Value != sid {
					t.Fatalf("request %d: a new session id", i)
				}
				sid = ck.Value
			}
		}
		if sid == "" {
			t.Fatalf("request %d: no sid cookie in %v", i, r.header)
		}
		workers[r.header.Get("X-Worker")] = true
	}
	if len(workers) < 2 {
		t.Fatalf("one worker answered every request (%v): the case was not exercised", workers)
	}
	t.Logf("one session over %d workers", len(workers))
}
