package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postgres is a PostgreSQL server of the tests' own: a cluster in a temp
// dir listening on a unix socket in that dir (and on loopback TCP when
// StartPostgresTCP made it), with a database and a
// user (Database, User, Password) for the tests. As MariaDB, a package
// starts one in its tests and closes it from TestMain.
type Postgres struct {
	Dir                      string // the socket's directory, the host for clients
	Port                     int    // names the socket (.s.PGSQL.Port)
	Database, User, Password string
	bin                      string
	args                     []string
	cred                     *syscall.Credential
	cmd                      *exec.Cmd
}

// StartPostgres creates a cluster with initdb and starts postgres on it.
// PostgreSQL refuses to run as root, so as root the cluster belongs to
// Debian's postgres user and the server runs as that user.
func StartPostgres() (*Postgres, error) { return startPostgres(0) }

// StartPostgresTCP is StartPostgres with the server listening on
// 127.0.0.1:port as well (Port is port, which also names the socket).
func StartPostgresTCP(port int) (*Postgres, error) { return startPostgres(port) }

func startPostgres(tcpPort int) (*Postgres, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return nil, fmt.Errorf("%w: initdb (apt-get install postgresql)", ErrNoServer)
	}
	sort.Strings(bins)
	bin := filepath.Dir(bins[len(bins)-1])
	if _, err := exec.LookPath("psql"); err != nil {
		return nil, fmt.Errorf("%w: psql (apt-get install postgresql-client): %v", ErrNoServer, err)
	}
	dir, err := os.MkdirTemp("", "postgres")
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, Port: 5432, Database: "magnet", User: "magnet", Password: "magnet", bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%w: no postgres user to run the server as root (apt-get install postgresql): %v", ErrNoServer, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := p.command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	listen := ""
	if tcpPort > 0 {
		p.Port, listen = tcpPort, "127.0.0.1"
	}
	p.args = []string{filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=" + listen, "-c", "fsync=off", "-c", "shared_buffers=16MB",
		"-c", "max_connections=100", "-c", "logging_collector=off"}
	if err := p.Start(); err != nil {
		p.Close()
		return nil, err
	}
	_, err = p.Query(fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", p.User, p.Password))
	if err == nil {
		_, err = p.Query(fmt.Sprintf("CREATE DATABASE %s OWNER %s", p.Database, p.User))
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Dir = p.Dir
	return cmd
}

// Start starts the server (again, after Stop) and waits until it answers.
func (p *Postgres) Start() error {
	if p.cmd != nil {
		return errors.New("postgres already running")
	}
	cmd := p.command(p.args[0], p.args[1:]...)
	log, err := os.Create(filepath.Join(os.TempDir(), filepath.Base(p.Dir)+".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := p.Query("SELECT 1")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			p.Stop()
			return fmt.Errorf("postgres did not start: %v: %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the postmaster's process id (0 when stopped).
func (p *Postgres) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop shuts the server down (fast shutdown: SIGINT; SIGKILL after 30s)
// and waits.
func (p *Postgres) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

// Close stops the server and removes its directory.
func (p *Postgres) Close() {
	p.Stop()
	os.RemoveAll(p.Dir)
	os.Remove(filepath.Join(os.TempDir(), filepath.Base(p.Dir)+".log"))
}

// Query runs sql as the superuser with psql and returns its output,
// unaligned without column names.
func (p *Postgres) Query(sql string) (string, error) {
	cmd := exec.Command("psql", "-h", p.Dir, "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", "postgres",
		"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql -c %q: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Connections counts the client connections of the tests' user.
func (p *Postgres) Connections() (int, error) {
	out, err := p.Query("SELECT count(*) FROM pg_stat_activity WHERE usename = '" + p.User + "'")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

// NeedPostgres starts a PostgreSQL server for test t and closes it when t
// ends; where the server is not installed the test skips, or fails under
// CI (Missing).
func NeedPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, err := StartPostgres()
	if errors.Is(err, ErrNoServer) {
		Missing(t, "PostgreSQL", "postgresql", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
