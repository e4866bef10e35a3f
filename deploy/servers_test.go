package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// lighttpdConf writes a minimal lighttpd.conf that includes snippet.
func lighttpdConf(t *testing.T, dir, root string, port int, snippet string) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, "magnet.conf"), snippet)
	conf := filepath.Join(dir, "lighttpd.conf")
	writeFile(t, conf, fmt.Sprintf(`server.document-root = %q
server.bind = "127.0.0.1"
server.port = %d
server.errorlog = %q
server.modules = ( "mod_access" )
include %q
`, root, port, filepath.Join(dir, "error.log"), filepath.Join(dir, "magnet.conf")))
	return conf
}

// TestLighttpdBinPath runs lighttpd with bin-path = magnetd and max-procs =
// 2: it serves 123.lua, and lighttpd restarts a magnetd that is killed.
func TestLighttpdBinPath(t *testing.T) {
	lighttpd := testutil.LookPath(t, "lighttpd", "lighttpd")
	needWorker(t)
	dir, root, port := t.TempDir(), docroot(t), testutil.FreePort(t)
	snippet := deployFile(t, "lighttpd-bin-path.conf",
		// lighttpd runs as root here: the workers get a user
		"/usr/local/bin/magnetd --refuse-root --docroot /var/www/html", magnetdBin+" -u www-data --refuse-root --docroot "+root,
		`"PHP_FCGI_CHILDREN" => "4"`, `"PHP_FCGI_CHILDREN" => "2"`,
		"/run/lighttpd/magnet.socket", filepath.Join(dir, "magnet.socket"))
	conf := lighttpdConf(t, dir, root, port, snippet)
	srv := daemon(t, lighttpd, "-D", "-f", conf)
	url := fmt.Sprintf("http://127.0.0.1:%d/123.lua", port)
	waitGet(t, url, "123")

	// lighttpd may replace a master it has just started (it probes each
	// socket), so wait for the set to settle: 2 masters of 2 workers each.
	var masters []int
	workersOf := map[int][]int{}
	settled := func() bool {
		masters = testutil.Children(srv.Process.Pid, "magnetd")
		clear(workersOf)
		for _, m := range masters {
			workersOf[m] = testutil.Children(m, "magnet-worker")
			if len(workersOf[m]) != 2 {
				return false
			}
		}
		return len(masters) == 2
	}
	if !poll(30*time.Second, settled) {
		t.Fatalf("lighttpd runs magnetd masters %v with workers %v, want 2 masters of 2 workers (PHP_FCGI_CHILDREN)", masters, workersOf)
	}
	for i := range 20 {
		if body, err := get(url); err != nil || body != "123" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}

	// Kill a master (kill's default SIGTERM): it stops its workers and
	// exits, and lighttpd starts a new one on the same socket.
	victim := masters[0]
	workers := testutil.Children(victim, "magnet-worker")
	syscall.Kill(victim, syscall.SIGTERM)
	var now []int
	if !poll(30*time.Second, func() bool {
		now = testutil.Children(srv.Process.Pid, "magnetd")
		get(url) // lighttpd may respawn on demand
		return len(now) == 2 && !slices.Contains(now, victim)
	}) {
		t.Fatalf("after killing %d lighttpd runs masters %v", victim, now)
	}
	for _, w := range workers {
		if testutil.Alive(w) {
			t.Errorf("worker %d outlived its master", w)
		}
	}
	waitGet(t, url, "123")
	t.Logf("masters %v replaced %d", now, victim)

	// SIGKILL: the workers die with the master (PR_SET_PDEATHSIG) and the
	// site answers again. lighttpd respawns the master unless its
	// connect() probe still reaches a dying worker's socket, which makes it
	// take the socket for an external backend (gw_spawn_connection); that
	// race is lighttpd's, the same with php-cgi and PHP_FCGI_CHILDREN.
	victim = now[0]
	workers = testutil.Children(victim, "magnet-worker")
	syscall.Kill(victim, syscall.SIGKILL)
	for _, w := range workers {
		if !poll(10*time.Second, func() bool { return !testutil.Alive(w) }) {
			t.Errorf("worker %d outlived its killed master", w)
		}
	}
	// (lighttpd itself may fail the one request it sends to the dead
	// socket before it takes that backend out.)
	waitGet(t, url, "123")
	respawned := poll(5*time.Second, func() bool {
		now = testutil.Children(srv.Process.Pid, "magnetd")
		get(url)
		return len(now) == 2 && !slices.Contains(now, victim)
	})
	t.Logf("after SIGKILL of %d: masters %v (respawned: %v)", victim, now, respawned)
}

// TestLighttpdSocket runs lighttpd against a magnetd started on its own.
func TestLighttpdSocket(t *testing.T) {
	lighttpd := testutil.LookPath(t, "lighttpd", "lighttpd")
	needWorker(t)
	dir, root, port := t.TempDir(), docroot(t), testutil.FreePort(t)
	sock := filepath.Join(dir, "magnet.sock")
	daemon(t, magnetdBin, "-n", "-s", sock, "-F", "2", "-u", "www-data", "--refuse-root", "--docroot", root)
	snippet := deployFile(t, "lighttpd-socket.conf", "/run/magnet/magnet.sock", sock)
	conf := lighttpdConf(t, dir, root, port, snippet)
	if os.Getuid() == 0 {
		// lighttpd runs unprivileged, as packaged: the socket must be its
		// to connect to.
		traversable(t, dir, root)
		ownedBy(t, "www-data", filepath.Join(dir, "error.log"))
		appendFile(t, conf, "server.username = \"www-data\"\nserver.groupname = \"www-data\"\n")
	}
	daemon(t, lighttpd, "-D", "-f", conf)
	waitGet(t, fmt.Sprintf("http://127.0.0.1:%d/123.lua", port), "123")
}

// TestNginx runs nginx with the example server block in front of magnetd.
func TestNginx(t *testing.T) {
	nginx := testutil.LookPath(t, "nginx", "nginx-light")
	needWorker(t)
	needRoot(t)
	dir, root, port := t.TempDir(), docroot(t), testutil.FreePort(t)
	sock := filepath.Join(dir, "magnet.sock")
	m := daemon(t, magnetdBin, "-n", "-s", sock, "-F", "2", "-u", "www-data", "--refuse-root", "--docroot", root)
	snippet := deployFile(t, "nginx-magnet.conf",
		"unix:/run/magnet/magnet.sock", "unix:"+sock,
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"root /var/www/html;", "root "+root+";",
		"include fastcgi_params;", "include /etc/nginx/fastcgi_params;")
	writeFile(t, filepath.Join(dir, "magnet.conf"), snippet)
	conf := filepath.Join(dir, "nginx.conf")
	tmp := func(n string) string { return filepath.Join(dir, n) }
	// nginx's workers run unprivileged, as packaged: the socket must be
	// theirs to connect to.
	traversable(t, dir, root)
	writeFile(t, conf, fmt.Sprintf(`user www-data;
daemon off;
worker_processes 1;
pid %s;
error_log %s;
events {}
http {
	access_log off;
	client_body_temp_path %s;
	fastcgi_temp_path %s;
	proxy_temp_path %s;
	uwsgi_temp_path %s;
	scgi_temp_path %s;
	include %s;
}
`, tmp("nginx.pid"), tmp("error.log"), tmp("body"), tmp("fastcgi"), tmp("proxy"), tmp("uwsgi"), tmp("scgi"), tmp("magnet.conf")))
	if out, err := runOut(nginx, "-t", "-c", conf); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	daemon(t, nginx, "-c", conf)
	url := fmt.Sprintf("http://127.0.0.1:%d/123.lua", port)
	waitGet(t, url, "123")

	// A reload of magnetd under nginx's kept-alive connections loses
	// nothing: nginx retries a cached connection that was closed.
	l := testutil.StartLoad(1, func() error {
		body, err := get(url)
		if err == nil && body != "123" {
			err = fmt.Errorf("body %q", body)
		}
		return err
	})
	defer l.Stop()
	l.WaitAnswered(t, 20, 30*time.Second)
	old := testutil.Children(m.Process.Pid, "magnet-worker")
	m.Process.Signal(syscall.SIGHUP)
	if !poll(30*time.Second, func() bool { return newWorkers(m.Process.Pid, old, 2) }) {
		t.Errorf("no new workers after SIGHUP: %v (before: %v)", testutil.Children(m.Process.Pid, "magnet-worker"), old)
	}
	l.WaitAnswered(t, l.Answered()+20, 30*time.Second) // and through the new workers
	ok, failed, errs := l.Stop()
	t.Logf("through nginx during a reload: ok=%d failed=%d %q", ok, failed, errs)
	if failed != 0 {
		t.Errorf("requests failed during the reload: %d, %q", failed, errs)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
}
