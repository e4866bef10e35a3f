package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

const nginxBin = "/usr/sbin/nginx"

// nginx is a running nginx in front of one FastCGI program.
type nginx struct {
	proc    *proc // nginx
	app     *proc // the FastCGI program
	docroot string
	socket  string
	base    string
}

// startNginx starts app (with --listen <socket> appended to args) and
// nginx -p <tmp> in front of it, and waits until both accept connections.
func startNginx(t *testing.T, app string, args ...string) *nginx {
	t.Helper()
	testutil.LookPath(t, nginxBin, "nginx-light")
	dir := t.TempDir()
	c := serverConfig{Dir: dir, DocRoot: makeDocroot(t), Socket: filepath.Join(dir, "w.sock")}
	a := startProc(t, app, append(args, "--listen", c.Socket), nil)
	waitDial(t, a, "unix", c.Socket)
	n, port := startOnFreePort(t, func(port int) *proc {
		c.Port = port
		conf := writeConfig(t, "nginx.conf", c)
		return startProc(t, nginxBin, []string{"-p", dir, "-e", "stderr", "-c", conf, "-g", "daemon off;"}, nil)
	})
	return &nginx{proc: n, app: a, docroot: c.DocRoot, socket: c.Socket, base: fmt.Sprintf("http://127.0.0.1:%d/", port)}
}

// TestNginxReference checks the nginx set-up with the reference responder.
func TestNginxReference(t *testing.T) {
	n := startNginx(t, refBin)
	r := httpGet(t, n.base+"123.lua")
	want := filepath.Join(n.docroot, "123.lua")
	if r.status != 200 || r.body != fmt.Sprintf("ref %d %s", n.app.pid(), want) {
		t.Fatalf("reference responder: status %d body %q; want 200 and \"ref %d %s\"", r.status, r.body, n.app.pid(), want)
	}
}

// TestNginx runs nginx with fastcgi_keep_conn in front of
// magnet-worker --listen.
func TestNginx(t *testing.T) {
	needWorker(t)
	n := startNginx(t, workerBin)

	t.Run("123", func(t *testing.T) { check123(t, httpGet(t, n.base+"123.lua")) })
	t.Run("error", func(t *testing.T) { testErrorThenOK(t, n.base) })
	t.Run("missing", func(t *testing.T) {
		if r := httpGet(t, n.base+"missing.lua"); r.status != 404 {
			t.Fatalf("missing.lua: status %d, want 404 (body %q)", r.status, r.body)
		}
	})
	t.Run("keepalive", func(t *testing.T) {
		// 200 requests from 4 keep-alive HTTP clients; nginx holds up
		// to 8 idle FastCGI connections to the one worker.
		const total, conc = 200, 4
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		for g := 0; g < conc; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < total/conc; i++ {
					r, err := get(n.base + "123.lua")
					if err != nil || r.status != 200 || r.body != "123" || r.header.Get("Content-Length") != "3" {
						mu.Lock()
						failed++
						mu.Unlock()
						t.Errorf("request %d: status %d body %q: %v", i, r.status, r.body, err)
					}
				}
			}()
		}
		wg.Wait()
		if failed > 0 {
			t.Fatalf("%d of %d requests failed", failed, total)
		}
		// nginx kept its FastCGI connections open for reuse.
		if c := connectedUnix(t, n.socket); c < 1 || c > 8 {
			t.Errorf("%d open FastCGI connections to the worker after the requests, want 1 to 8 (keepalive 8)", c)
		}
	})
	t.Run("post", func(t *testing.T) {
		for _, size := range []int{0, 1, 5000, 300 << 10} {
			body := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
			r := post(t, n.base+"echo.lua", body)
			if r.status != 200 || r.body != string(body) {
				t.Errorf("echo.lua with a %d-byte body: status %d, %d bytes back", size, r.status, len(r.body))
			}
			r = post(t, n.base+"bodylen.lua", body)
			if r.status != 200 || strings.TrimSpace(r.body) != strconv.Itoa(size) {
				t.Errorf("bodylen.lua with a %d-byte body: status %d body %q", size, r.status, r.body)
			}
		}
	})
	if n.app.exited() {
		t.Fatalf("magnet-worker exited: %v", n.app.err)
	}
}

// post sends body to url and reads the whole response.
func post(t *testing.T, url string, body []byte) httpResult {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	r, err := httpDo(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return r
}

// connectedUnix counts the connected sockets whose address is path, as
// listed in /proc/net/unix: the accepted ends of connections to a
// listener bound there.
func connectedUnix(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; St 03 is connected.
		if len(f) == 8 && f[5] == "03" && f[7] == path {
			n++
		}
	}
	return n
}
