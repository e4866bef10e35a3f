package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ErrNoServer wraps the error of a database server whose programs are not
// installed: the caller passes it to Missing.
var ErrNoServer = errors.New("database server not installed")

// MariaDB is a MariaDB server of the tests' own: a data directory in a
// temp dir, a unix socket and no network, with a database and a user
// (Database, User, Password) for the tests. A package starts one in its
// tests and closes it from TestMain, since a start costs seconds.
type MariaDB struct {
	Socket                   string
	Addr                     string // host:port when it listens on TCP (StartMariaDBIn)
	Database, User, Password string
	dir                      string
	wrap                     []string // the command the server runs under, as NetLab.In gives
	args                     []string
	cmd                      *exec.Cmd
}

// StartMariaDB creates a data directory with mariadb-install-db and starts
// mariadbd on it. As root the server runs as root (--user=root): the temp
// dir then needs no other owner, and CI runs as root.
func StartMariaDB() (*MariaDB, error) { return StartMariaDBIn(nil, "", 0) }

// StartMariaDBIn starts a MariaDB server under wrap (a network namespace:
// NetLab.In), listening on bind:port as well as on its unix socket, which
// the tests' own client (Query) keeps using; the test user may connect
// from any host. With bind "" it is StartMariaDB.
func StartMariaDBIn(wrap []string, bind string, port int) (*MariaDB, error) {
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		return nil, fmt.Errorf("%w: mariadb-install-db (apt-get install mariadb-server): %v", ErrNoServer, err)
	}
	server, err := exec.LookPath("mariadbd")
	if err != nil {
		if server, err = exec.LookPath("/usr/sbin/mariadbd"); err != nil {
			return nil, fmt.Errorf("%w: mariadbd (apt-get install mariadb-server): %v", ErrNoServer, err)
		}
	}
	if _, err := exec.LookPath("mariadb"); err != nil {
		return nil, fmt.Errorf("%w: mariadb (apt-get install mariadb-client): %v", ErrNoServer, err)
	}
	dir, err := os.MkdirTemp("", "mariadb")
	if err != nil {
		return nil, err
	}
	m := &MariaDB{Socket: filepath.Join(dir, "mysqld.sock"), Database: "magnet", User: "magnet", Password: "magnet", dir: dir, wrap: wrap}
	network, host := []string{"--skip-networking"}, "localhost"
	if bind != "" {
		m.Addr = net.JoinHostPort(bind, strconv.Itoa(port))
		network, host = []string{"--bind-address=" + bind, "--port=" + strconv.Itoa(port)}, "%"
	}
	data := filepath.Join(dir, "data")
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"}
	}
	out, err := exec.Command(install, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, user...)...).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	m.args = append([]string{server, "--no-defaults", "--datadir=" + data, "--socket=" + m.Socket,
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(dir, "error.log"), "--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=8M", "--skip-log-bin", "--max-connections=200"}, append(network, user...)...)
	if err := m.Start(); err != nil {
		m.Close()
		return nil, err
	}
	_, err = m.Query(fmt.Sprintf("CREATE DATABASE %s; CREATE USER '%s'@'%s' IDENTIFIED BY '%s'; "+
		"GRANT ALL ON %s.* TO '%s'@'%s'", m.Database, m.User, host, m.Password, m.Database, m.User, host))
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Start starts the server (again, after Stop) and waits until it answers.
func (m *MariaDB) Start() error {
	if m.cmd != nil {
		return errors.New("mariadbd already running")
	}
	argv := append(append([]string(nil), m.wrap...), m.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return err
	}
	m.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := m.Query("SELECT 1")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
			m.Stop()
			return fmt.Errorf("mariadbd did not start: %v: %s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the server's process id (0 when stopped): for SIGSTOP.
func (m *MariaDB) Pid() int {
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Stop shuts the server down (SIGTERM, and SIGKILL after 30s) and waits.
func (m *MariaDB) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGCONT) // in case a test stopped it
	m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
}

// Close stops the server and removes its directory.
func (m *MariaDB) Close() {
	m.Stop()
	os.RemoveAll(m.dir)
}

// Query runs sql as the server's root with the mariadb client and returns
// its output, tab-separated without column names.
func (m *MariaDB) Query(sql string) (string, error) {
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+m.Socket, "-uroot",
		"--connect-timeout=5", "-N", "-B", "-e", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb -e %q: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Connections counts the connections of the tests' user.
func (m *MariaDB) Connections() (int, error) {
	out, err := m.Query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '" + m.User + "'")
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(out, &n)
	return n, err
}

// NeedMariaDB starts a MariaDB server for test t and closes it when t
// ends; where the server is not installed the test skips, or fails under
// CI (Missing).
func NeedMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	m, err := StartMariaDB()
	if errors.Is(err, ErrNoServer) {
		Missing(t, "MariaDB", "mariadb-server", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}
