package daemon

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/socket"
)

// listen binds a unix socket in a test directory.
func listen(t *testing.T) *socket.Socket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.sock")
	s, err := socket.Listen(socket.ListenConfig{Path: path, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startSh starts sh -c script as a daemon would be started.
func startSh(t *testing.T, script string) *Process {
	t.Helper()
	d, err := Start("/bin/sh", []string{"sh", "-c", script}, listen(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestStartReady(t *testing.T) {
	// The child sees EnvVar, the socket on fd 3, and reports on fd 4.
	d := startSh(t, `[ "$`+EnvVar+`" = 1 ] && [ -e /proc/self/fd/3 ] && echo ok >&4`)
	if d.PID() <= 0 {
		t.Errorf("PID %d", d.PID())
	}
	if err := d.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
}

func TestStartReportsError(t *testing.T) {
	d := startSh(t, `echo "error: no workers" >&4; exit 1`)
	if err := d.Wait(); err == nil || err.Error() != "no workers" {
		t.Errorf("Wait: %v; want the child's report", err)
	}
}

func TestStartExitBeforeReady(t *testing.T) {
	d := startSh(t, `exit 3`)
	err := d.Wait()
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Wait: %v", err)
	}
}

func TestStartMissingProgram(t *testing.T) {
	_, err := Start(filepath.Join(t.TempDir(), "missing"), []string{"missing"}, listen(t), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "daemonizing: ") {
		t.Errorf("Start: %v", err)
	}
}

func TestIsChild(t *testing.T) {
	t.Setenv(EnvVar, "")
	if IsChild() {
		t.Error("IsChild without " + EnvVar)
	}
	t.Setenv(EnvVar, "1")
	if !IsChild() {
		t.Error("not IsChild with " + EnvVar)
	}
}

// childFDs returns a fresh descriptor of f, as a child finds it, and the
// read end of a pipe whose write end is the child's readiness descriptor.
func childFDs(t *testing.T, f *os.File) (fd, readyFD int, r *os.File) {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	readyFD, err = syscall.Dup(int(w.Fd()))
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return fd, readyFD, r
}

func TestInheritedSocketReports(t *testing.T) {
	s := listen(t)
	fd, readyFD, r := childFDs(t, s.File)
	got, notify, err := inheritedSocket(fd, readyFD, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer got.File.Close()
	if got.Network != "unix" || got.Addr != s.Addr || got.Owned() != s.Addr {
		t.Errorf("socket %s %s owned %q", got.Network, got.Addr, got.Owned())
	}
	notify(errors.New("boom"))
	notify(nil) // only the first report counts
	if b, _ := io.ReadAll(r); string(b) != "error: boom\n" {
		t.Errorf("report %q", b)
	}
}

func TestInheritedSocketReady(t *testing.T) {
	s := listen(t)
	fd, readyFD, r := childFDs(t, s.File)
	got, notify, err := inheritedSocket(fd, readyFD, "")
	if err != nil {
		t.Fatal(err)
	}
	defer got.File.Close()
	if got.Owned() != "" {
		t.Errorf("owned %q without a path", got.Owned())
	}
	notify(nil)
	if b, _ := io.ReadAll(r); string(b) != "ok\n" {
		t.Errorf("report %q", b)
	}
}

func TestInheritedSocketNotListening(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, readyFD, r := childFDs(t, f)
	defer syscall.Close(fd)
	if _, _, err := inheritedSocket(fd, readyFD, ""); err == nil {
		t.Fatal("no error for a descriptor that is not a listener")
	}
	// The parent learns why at once.
	if b, _ := io.ReadAll(r); !strings.HasPrefix(string(b), "error: ") || !strings.Contains(string(b), "not a listening socket") {
		t.Errorf("report %q", b)
	}
}
