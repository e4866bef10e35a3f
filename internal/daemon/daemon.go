package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/magnet-fcgi/magnet/internal/socket"
)

// EnvVar marks a process started by Start. Go cannot fork, so magnetd
// daemonizes by starting itself again, detached, with the listen socket on
// fd 3 and a readiness pipe on fd 4.
const EnvVar = "MAGNETD_DAEMON"

const (
	socketFD = 3
	readyFD  = 4
)

// Process is a detached program started by Start, seen from its parent.
type Process struct {
	pid   int
	cmd   *exec.Cmd
	ready *os.File
}

// Start starts the program at path with args (args[0] included) in a new
// session, with EnvVar set, stdin and stdout on /dev/null and stderr on
// stderr (or /dev/null when nil). The socket is passed on; the child finds
// it with InheritedSocket. To daemonize, path is os.Executable() and args
// os.Args: the running program starts again.
func Start(path string, args []string, sock *socket.Socket, stderr *os.File) (*Process, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("daemonizing: %w", err)
	}
	defer null.Close()
	if stderr == nil {
		stderr = null
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("daemonizing: %w", err)
	}
	defer w.Close()
	cmd := &exec.Cmd{
		Path:        path,
		Args:        args,
		Env:         append(os.Environ(), EnvVar+"=1"),
		Stdin:       null,
		Stdout:      null,
		Stderr:      stderr,
		ExtraFiles:  []*os.File{sock.File, w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("daemonizing: %w", err)
	}
	return &Process{pid: cmd.Process.Pid, cmd: cmd, ready: r}, nil
}

// PID is the daemon's process id.
func (d *Process) PID() int { return d.pid }

// Wait returns nil once the daemon reported that its workers started, or an
// error when it failed or exited before that. The daemon keeps running
// after Wait.
func (d *Process) Wait() error {
	defer d.ready.Close()
	b, _ := io.ReadAll(d.ready)
	msg := string(b)
	if msg == "ok\n" {
		d.cmd.Process.Release()
		return nil
	}
	err := d.cmd.Wait()
	if m, ok := strings.CutPrefix(msg, "error: "); ok {
		return errors.New(strings.TrimSpace(m))
	}
	if err != nil {
		return fmt.Errorf("daemon exited before it was ready (see the log): %w", err)
	}
	return errors.New("daemon exited before it was ready (see the log)")
}

// IsChild reports whether this process was started by Start.
func IsChild() bool { return os.Getenv(EnvVar) != "" }

// InheritedSocket returns, in a process started by Start, the socket its
// parent bound (owned names the unix socket path to remove at exit) and a
// function that tells the parent the outcome of the start: nil when the
// workers run, else the error the parent should report. Only its first
// call counts.
func InheritedSocket(owned string) (*socket.Socket, func(error), error) {
	os.Unsetenv(EnvVar)
	return inheritedSocket(socketFD, readyFD, owned)
}

// inheritedSocket is InheritedSocket with the descriptors as arguments, so
// that a test can pass its own.
func inheritedSocket(sockFD, readyFD int, owned string) (*socket.Socket, func(error), error) {
	syscall.CloseOnExec(readyFD)
	ready := os.NewFile(uintptr(readyFD), "ready")
	var once sync.Once
	notify := func(err error) {
		once.Do(func() {
			if err == nil {
				ready.Write([]byte("ok\n"))
			} else {
				ready.Write([]byte("error: " + err.Error() + "\n"))
			}
			ready.Close()
		})
	}
	sock, err := socket.FileSocket(sockFD, owned)
	if err != nil {
		notify(err)
		return nil, nil, err
	}
	return sock, notify, nil
}
