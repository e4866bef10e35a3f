package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/protocol"
)

// confinedPool runs magnetd with one magnet-worker on a unix socket, the
// scripts in a docroot, and returns the socket and the docroot.
func confinedPool(t *testing.T, env []string, args ...string) (*master, string, string) {
	t.Helper()
	needWorker(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	os.Mkdir(root, 0o755)
	sock := filepath.Join(dir, "m.sock")
	writeScript(t, filepath.Join(root, "ok.lua"), "ok-page")
	m := startMaster(t, nil, env, append([]string{"-n", "-s", sock, "-F", "1", "--docroot", root}, args...)...)
	if !poll(30*time.Second, func() bool { _, err := request("unix", sock, filepath.Join(root, "ok.lua"), ""); return err == nil }) {
		t.Fatalf("pool does not answer:\n%s", m.out.String())
	}
	return m, sock, root
}

// TestSandboxProcess: under --sandbox, reading /etc/shadow or
// /proc/self/environ, running commands and loading C code are Lua errors,
// answered 500, and the next request is fine; without it, lua-magnet's
// behaviour is unchanged.
func TestSandboxProcess(t *testing.T) {
	_, sock, root := confinedPool(t, nil, "--sandbox")
	ok := filepath.Join(root, "ok.lua")
	for name, src := range map[string]string{
		"shadow":  `print(io.open("/etc/shadow"):read("*a"))`,
		"environ": `print(magnet.fs.readfile("/proc/self/environ"))`,
		"lines":   `for l in io.lines("/proc/self/environ") do print(l) end`,
		"execute": `os.execute("touch /tmp/magnet-sandbox-escape")`,
		"popen":   `print(io.popen("id"):read("*a"))`,
		"loadlib": `print(package.loadlib("libc.so.6", "system"))`,
		"posix":   `package.cpath = "/usr/lib/x86_64-linux-gnu/?.so;/lib/x86_64-linux-gnu/?.so"; print(require("libc"))`,
		"debug":   `print(debug.getregistry())`,
	} {
		script := filepath.Join(root, name+".lua")
		if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		body, err := request("unix", sock, script, "")
		if err == nil || !strings.Contains(err.Error(), "status 500") {
			t.Errorf("%s: %q, %v; want a 500", name, body, err)
		}
		if body, err := request("unix", sock, ok, ""); err != nil || !strings.Contains(body, "ok-page") {
			t.Fatalf("after %s: %q, %v", name, body, err)
		}
	}
	in := filepath.Join(root, "data.txt")
	os.WriteFile(in, []byte("inside"), 0o644)
	script := filepath.Join(root, "inside.lua")
	os.WriteFile(script, []byte(`print("Content-Type: text/plain\r\n\r\n" .. io.open("`+in+`"):read("*a"))`), 0o644)
	if body, err := request("unix", sock, script, ""); err != nil || body != "inside" {
		t.Errorf("a file in the docroot: %q, %v", body, err)
	}

	// the same scripts without --sandbox
	_, sock, root = confinedPool(t, nil)
	script = filepath.Join(root, "free.lua")
	os.WriteFile(script, []byte(`print("Content-Type: text/plain\r\n\r\n", io.open("/etc/passwd") ~= nil, io.popen("echo hi"):read("*l"), debug.getregistry() ~= nil)`), 0o644)
	if body, err := request("unix", sock, script, ""); err != nil || body != "truehitrue" {
		t.Errorf("without --sandbox: %q, %v", body, err)
	}
}

// TestClearEnv: the workers do not see a variable set on magnetd; --env
// passes one, with magnetd's value or its own; MAGNET_* settings pass.
func TestClearEnv(t *testing.T) {
	env := []string{"SECRET_X=leaked", "KEEP_Y=kept", "MAGNET_TEST_SETTING=setting"}
	_, sock, root := confinedPool(t, env, "--env", "KEEP_Y", "--env", "SET_Z=given")
	script := filepath.Join(root, "env.lua")
	os.WriteFile(script, []byte(`print("Content-Type: text/plain\r\n\r\n")
		for _, k in ipairs{"SECRET_X", "KEEP_Y", "SET_Z", "MAGNET_TEST_SETTING", "PATH"} do print(k, "=", os.getenv(k) and (k == "PATH" and "set" or os.getenv(k)) or "nil", ";") end`), 0o644)
	body, err := request("unix", sock, script, "")
	if want := "SECRET_X=nil;KEEP_Y=kept;SET_Z=given;MAGNET_TEST_SETTING=setting;PATH=set;"; err != nil || body != want {
		t.Errorf("--clear-env: %q, %v; want %q", body, err, want)
	}
	_, sock, root = confinedPool(t, env, "--clear-env=false")
	script = filepath.Join(root, "env.lua")
	os.WriteFile(script, []byte(`print("Content-Type: text/plain\r\n\r\n", os.getenv("SECRET_X"))`), 0o644)
	if body, err := request("unix", sock, script, ""); err != nil || body != "leaked" {
		t.Errorf("--clear-env=false: %q, %v", body, err)
	}
}

// TestRootWarning: as root, workers without -u are warned about, and
// --refuse-root refuses them with a clear exit; with -u they start.
func TestRootWarning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	m, _, _ := confinedPool(t, nil)
	m.waitLog("RUNNING THE WORKERS AS ROOT", 10*time.Second)

	needWorker(t)
	sock := filepath.Join(t.TempDir(), "r.sock")
	m = startMaster(t, nil, nil, "-n", "-s", sock, "--docroot", t.TempDir(), "--refuse-root")
	if code := m.wait(30 * time.Second); code != exitFailure || !strings.Contains(m.out.String(), "--refuse-root") {
		t.Errorf("--refuse-root as root: exit %d, output %q", code, m.out.String())
	}
	// standalone magnet-worker
	cmd := exec.Command(workerBin, "--listen", sock, "--refuse-root")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--refuse-root") {
		t.Errorf("magnet-worker --refuse-root as root: %v, %q", err, out)
	}
	w := startWorker(t, nil, "--listen", sock)
	w.waitLog("RUNNING AS ROOT", 10*time.Second)
}

// startWorker runs a standalone magnet-worker; it is a master for the
// output and exit helpers.
func startWorker(t *testing.T, env []string, args ...string) *master {
	t.Helper()
	needWorker(t)
	m := &master{t: t, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(workerBin, args...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	m.cmd.Env = append(os.Environ(), env...)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			m.cmd.Process.Kill()
			<-m.done
		}
		if t.Failed() {
			t.Logf("magnet-worker output:\n%s", m.out.String())
		}
	})
	return m
}

// TestTCPNeedsDocroot: on TCP, magnet-worker without --docroot refuses to
// start, naming the way out; with --any-script it serves.
func TestTCPNeedsDocroot(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	w := startWorker(t, nil, "--listen", addr)
	if code := w.wait(30 * time.Second); code == 0 || !strings.Contains(w.out.String(), "--any-script") {
		t.Fatalf("TCP without --docroot: exit %d, output %q", code, w.out.String())
	}
	w = startWorker(t, nil, "--listen", addr, "--any-script")
	script := filepath.Join(t.TempDir(), "any.lua")
	writeScript(t, script, "any-page")
	if !poll(30*time.Second, func() bool {
		b, err := request("tcp", addr, script, "")
		return err == nil && strings.Contains(b, "any-page")
	}) {
		t.Fatalf("--any-script does not serve:\n%s", w.out.String())
	}
	w.waitLog("no --docroot", 10*time.Second)
	w.waitLog("loopback clients only", 10*time.Second)
}

// fromAddr sends one request from source address src; it reports whether
// an answer came.
func fromAddr(t *testing.T, src, addr, script string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	c := protocol.NewClient(nc)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	body, err := do(c, script, "", false)
	return err == nil && strings.Contains(body, "tcp-page")
}

// TestAllowedClients: a client outside --allowed-clients is closed at
// once (127.0.0.2 when only 127.0.0.1 is allowed: Linux routes all of
// 127/8 on lo), with a log line; FCGI_WEB_SERVER_ADDRS is honoured the
// same way.
func TestAllowedClients(t *testing.T) {
	root := t.TempDir()
	script := filepath.Join(root, "tcp.lua")
	writeScript(t, script, "tcp-page")
	for _, c := range []struct {
		name string
		env  []string
		args []string
		ok   string // the allowed source; the other is refused
	}{
		{"flag", nil, []string{"--allowed-clients", "127.0.0.1"}, "127.0.0.1"},
		{"FCGI_WEB_SERVER_ADDRS", []string{"FCGI_WEB_SERVER_ADDRS=127.0.0.2"}, nil, "127.0.0.2"},
		{"cidr", nil, []string{"--allowed-clients", "10.0.0.0/8, 127.0.0.2/32"}, "127.0.0.2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
			w := startWorker(t, c.env, append([]string{"--listen", addr, "--docroot", root, "--log-level", "debug"}, c.args...)...)
			if !poll(30*time.Second, func() bool {
				nc, err := net.Dial("tcp", addr)
				if err == nil {
					nc.Close()
				}
				return err == nil
			}) {
				t.Fatalf("worker not listening:\n%s", w.out.String())
			}
			refused := "127.0.0.2"
			if c.ok == refused {
				refused = "127.0.0.1"
			}
			if !fromAddr(t, c.ok, addr, script) {
				t.Errorf("allowed client %s not answered", c.ok)
			}
			if fromAddr(t, refused, addr, script) {
				t.Errorf("client %s answered", refused)
			}
			w.waitLog("client="+refused, 10*time.Second)
			if !fromAddr(t, c.ok, addr, script) {
				t.Errorf("allowed client %s not answered after a refusal", c.ok)
			}
		})
	}
}
