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

// DaemonEnv marks a process started by StartDaemon. Go cannot fork, so
// magnetd daemonizes by starting itself again, detached, with the listen
// socket on fd 3 and a readiness pipe on fd 4.
const DaemonEnv = "MAGNETD_DAEMON"

const (
	daemonSocketFD = 3
	daemonReadyFD  = 4
)

// Daemon is a detached copy of the running program started by StartDaemon.
type Daemon struct {
	pid   int
	cmd   *exec.Cmd
	ready *os.File
}

// StartDaemon starts the running executable again with the same arguments
// in a new session, with stdin and stdout on /dev/null and stderr on
// stderr (or /dev/null when nil). The socket is passed on; the child finds
// it with DaemonSocket.
func StartDaemon(sock *socket.Socket, stderr *os.File) (*Daemon, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("daemonizing: %w", err)
	}
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
		Path:        exe,
		Args:        os.Args,
		Env:         append(os.Environ(), DaemonEnv+"=1"),
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
	return &Daemon{pid: cmd.Process.Pid, cmd: cmd, ready: r}, nil
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.pid }

// Wait returns nil once the daemon reported that its workers started, or an
// error when it failed or exited before that. The daemon keeps running
// after Wait.
func (d *Daemon) Wait() error {
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

// IsDaemon reports whether this process was started by StartDaemon.
func IsDaemon() bool { return os.Getenv(DaemonEnv) != "" }

// DaemonSocket returns, in a process started by StartDaemon, the socket its
// parent bound (owned names the unix socket path to remove at exit) and a
// function that tells the parent the outcome of the start: nil when the
// workers run, else the error the parent should report. Only its first
// call counts.
func DaemonSocket(owned string) (*socket.Socket, func(error), error) {
	os.Unsetenv(DaemonEnv)
	syscall.CloseOnExec(daemonReadyFD)
	ready := os.NewFile(daemonReadyFD, "ready")
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
	sock, err := socket.FileSocket(daemonSocketFD, owned)
	if err != nil {
		notify(err)
		return nil, nil, err
	}
	return sock, notify, nil
}
