package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Redis is a redis-server a test started in a temp dir, on a unix socket
// and, when asked, a TCP address. It runs without persistence and is
// stopped when the test ends.
type Redis struct {
	Socket string // the unix socket
	Addr   string // host:port, or "" for the socket only
	dir    string
	wrap   []string
	args   []string
	cmd    *exec.Cmd
	t      testing.TB
}

// StartRedis starts redis-server (Debian's redis-server) on a unix socket
// in a temp dir, and on bind:port too when bind is not "" (port 0: a free
// one). A missing redis-server skips the test, or fails it under CI=true.
func StartRedis(t testing.TB, bind string, port int) *Redis {
	t.Helper()
	return StartRedisIn(t, nil, bind, port)
}

// StartRedisIn is StartRedis with the command run through wrap (a
// NetLab host's In), so that bind is an address of that host.
func StartRedisIn(t testing.TB, wrap []string, bind string, port int) *Redis {
	t.Helper()
	bin := LookPath(t, "redis-server", "redis-server")
	dir, err := os.MkdirTemp("", "redis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &Redis{Socket: filepath.Join(dir, "redis.sock"), dir: dir, wrap: wrap, t: t}
	r.args = []string{bin, "--dir", dir, "--unixsocket", r.Socket, "--unixsocketperm", "777",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log")}
	if bind == "" {
		r.args = append(r.args, "--port", "0")
	} else {
		if port == 0 {
			port = FreePort(t)
		}
		r.Addr = net.JoinHostPort(bind, strconv.Itoa(port))
		r.args = append(r.args, "--bind", bind, "--port", strconv.Itoa(port), "--protected-mode", "no")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server again after Stop, and waits until it answers.
func (r *Redis) Start() error {
	if r.cmd != nil {
		return fmt.Errorf("redis-server already running")
	}
	os.Remove(r.Socket)
	argv := append(append([]string(nil), r.wrap...), r.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", r.Socket); err == nil {
			ok := ping(c)
			c.Close()
			if ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.Stop()
			return fmt.Errorf("redis-server did not start: %s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: Redis gone, as after a crash) and waits
// for it.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// ping sends PING and reports whether PONG came back.
func ping(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	var b [7]byte
	n, _ := c.Read(b[:])
	return string(b[:n]) == "+PONG\r\n"
}
