package worker

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/protocol"
)

func textScript(v string) string { return `print("Content-Type: text/plain\r\n\r\n` + v + `")` }

// TestReloadEachEdit: each way of changing a script is seen by the very next
// request, on a keep-alive connection alone on its worker (the worker
// waits in a blocking read), on one of two (epoll_wait), and on a new
// connection per request (accept). No sleeps: write, then request.
func TestReloadEachEdit(t *testing.T) {
	for _, mode := range []string{"sole", "epoll", "accept"} {
		t.Run(mode, func(t *testing.T) {
			base := t.TempDir()
			os.Mkdir(filepath.Join(base, "r1"), 0o755)
			os.Mkdir(filepath.Join(base, "r2"), 0o755)
			root := filepath.Join(base, "www")
			os.Symlink("r1", root)
			sock, _ := startServer(t, Config{Scripts: scriptsIn(base)})
			c := dial(t, sock)
			if mode == "epoll" {
				other := dial(t, sock)
				get(t, other, "/nonexistent.lua", true) // the worker now holds two connections
			}
			request := func(p string) string {
				cl := c
				if mode == "accept" {
					var err error
					if cl, err = protocol.Dial("unix", sock); err != nil {
						t.Fatal(err)
					}
					defer cl.Close()
				}
				status, body, _ := get(t, cl, p, mode != "accept")
				return fmt.Sprint(status, " ", strings.TrimSpace(body))
			}
			p := filepath.Join(root, "w.lua")
			real := filepath.Join(base, "r1", "w.lua")
			check := func(step, want string) {
				t.Helper()
				if got := request(p); got != want {
					t.Fatalf("%s: got %q, want %q", step, got, want)
				}
			}
			writeScript(t, base, "r1/w.lua", textScript("v1"))
			check("first", "200 v1")
			mtime := time.Unix(1700000000, 0)
			for _, v := range []string{"v2", "v3"} {
				writeScript(t, base, "r1/w.lua", textScript(v))
				os.Chtimes(real, mtime, mtime)
				check("rewrite, same size and mtime", "200 "+v)
			}
			writeScript(t, base, "r1/.w.lua.swp", textScript("v4"))
			os.Rename(filepath.Join(base, "r1/.w.lua.swp"), real)
			check("rename over", "200 v4")
			tmp := writeScript(t, t.TempDir(), "x.lua", textScript("v5"))
			if out, err := exec.Command("cp", tmp, real).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			check("cp over", "200 v5")
			os.Remove(real)
			check("deleted", "404 Not Found")
			writeScript(t, base, "r1/w.lua", textScript("v6"))
			check("re-created", "200 v6")
			writeScript(t, base, "r2/w.lua", textScript("v7"))
			os.Symlink("r2", root+".tmp")
			os.Rename(root+".tmp", root)
			check("docroot symlink switched", "200 v7")
		})
	}
}

// workerTID is the thread of srv's loop, found asleep in its epoll set.
func workerTID(t *testing.T, srv *Server) string {
	t.Helper()
	waitBlocked(t, "worker in epoll_wait", inEpollWait(srv))
	tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
	for _, p := range tasks {
		b, _ := os.ReadFile(p)
		if f := strings.Fields(string(b)); len(f) > 1 && f[1] == "0x"+strconv.FormatInt(int64(srv.epfd), 16) {
			return filepath.Base(filepath.Dir(p))
		}
	}
	t.Fatal("worker thread not found")
	return ""
}

// TestNoStatPerRequest: the serving thread, traced with strace -c over 1,000
// keep-alive requests of an unchanged script, makes no stat call.
func TestNoStatPerRequest(t *testing.T) {
	strace := testutil.LookPath(t, "strace", "strace")
	dir := t.TempDir()
	sock, srv := startServer(t, Config{Scripts: scriptsIn(dir)})
	p := writeScript(t, dir, "s.lua", textScript("same"))
	c := dial(t, sock)
	get(t, c, p, true)
	tid := workerTID(t, srv)

	out := filepath.Join(t.TempDir(), "strace.out")
	cmd := exec.Command(strace, "-c", "-o", out, "-p", tid)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	attached := bufio.NewScanner(stderr)
	if !attached.Scan() || !strings.Contains(attached.Text(), "attached") {
		t.Fatalf("strace: %q", attached.Text())
	}
	go func() {
		for attached.Scan() {
		}
	}()
	const n = 1000
	for i := 0; i < n; i++ {
		if _, body, _ := get(t, c, p, true); strings.TrimSpace(body) != "same" {
			t.Fatalf("got %q", body)
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Logf("strace: %v", err)
	}
	summary, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	total := 0
	for _, line := range strings.Split(string(summary), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" {
			continue
		}
		k, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		calls[f[len(f)-1]] = k
		total += k
	}
	t.Logf("worker thread, %d requests: %d system calls (%.2f per request): %v", n, total, float64(total)/n, calls)
	if stats := calls["newfstatat"] + calls["statx"] + calls["stat"] + calls["fstatat64"]; stats > n/100 {
		t.Fatalf("%d stat calls for %d requests of an unchanged script\n%s", stats, n, summary)
	}
}
