package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// bareLighttpd is lighttpd's bin-path running magnetd as it runs php-cgi:
// the program alone, no argument.
const bareLighttpd = `server.modules += ( "mod_fastcgi" )
fastcgi.server += ( ".lua" =>
	((
		"bin-path" => %q,
		"socket" => %q,
		"max-procs" => 1,
		"bin-environment" => ( "PHP_FCGI_CHILDREN" => "3" ),
		"check-local" => "enable"
	))
)
`

// TestLighttpdBareBinPath: lighttpd starts a bare magnetd (no argument,
// the socket on fd 0), which serves with $PHP_FCGI_CHILDREN workers.
func TestLighttpdBareBinPath(t *testing.T) {
	lighttpd := testutil.LookPath(t, "lighttpd", "lighttpd")
	needWorker(t)
	dir, root, port := t.TempDir(), docroot(t), testutil.FreePort(t)
	conf := lighttpdConf(t, dir, root, port, fmt.Sprintf(bareLighttpd, magnetdBin, filepath.Join(dir, "magnet.socket")))
	srv := daemon(t, lighttpd, "-D", "-f", conf)
	waitGet(t, fmt.Sprintf("http://127.0.0.1:%d/123.lua", port), "123")
	var masters, workers []int
	if !poll(30*time.Second, func() bool {
		masters = testutil.Children(srv.Process.Pid, "magnetd")
		if len(masters) != 1 {
			return false
		}
		workers = testutil.Children(masters[0], "magnet-worker")
		return len(workers) == 3
	}) {
		t.Fatalf("lighttpd runs masters %v with workers %v, want 1 master of 3 workers (PHP_FCGI_CHILDREN)", masters, workers)
	}
}

// TestSpawnFcgiBare: spawn-fcgi -s SOCK -- magnetd starts a bare magnetd
// that serves the socket with $PHP_FCGI_CHILDREN workers; without a socket
// on fd 0 a bare magnetd still shows its help and exits 255.
func TestSpawnFcgiBare(t *testing.T) {
	spawn := testutil.LookPath(t, "spawn-fcgi", "spawn-fcgi")
	needWorker(t)
	dir, root := t.TempDir(), docroot(t)
	sock, pidFile := filepath.Join(dir, "magnet.sock"), filepath.Join(dir, "spawn.pid")
	cmd := exec.Command(spawn, "-s", sock, "-P", pidFile, "--", magnetdBin)
	cmd.Env = append(os.Environ(), "PHP_FCGI_CHILDREN=2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("spawn-fcgi: %v\n%s", err, out)
	}
	master := readPID(t, pidFile)
	t.Cleanup(func() {
		cmd := exec.Command("kill", fmt.Sprint(master))
		cmd.Run()
		poll(30*time.Second, func() bool { return !testutil.Alive(master) })
	})
	script := filepath.Join(root, "123.lua")
	var body string
	var err error
	if !poll(30*time.Second, func() bool { body, err = fcgiGet("unix", sock, script); return err == nil && body == "123" }) {
		t.Fatalf("bare magnetd under spawn-fcgi: %q, %v", body, err)
	}
	var workers []int
	if !poll(30*time.Second, func() bool { workers = testutil.Children(master, "magnet-worker"); return len(workers) == 2 }) {
		t.Errorf("master %d runs workers %v, want 2 (PHP_FCGI_CHILDREN)", master, workers)
	}

	help := exec.Command(magnetdBin)
	out, err := help.CombinedOutput()
	if help.ProcessState == nil || help.ProcessState.ExitCode() != 255 || len(out) == 0 {
		t.Errorf("bare magnetd without a socket: %v, output %q; want the help and 255", err, out)
	}
}
