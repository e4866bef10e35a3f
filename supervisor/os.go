package supervisor

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// OS is what the pool asks of the operating system: starting and
// signalling processes, learning of their exits, receiving the master's
// signals, and the clock. The pool's logic is tested against a fake; a nil
// Config.OS is the real operating system.
type OS interface {
	// Start starts a worker process as spec says and returns its pid and
	// the read end of its combined stdout and stderr (nil when there is
	// none). exited is called once, from any goroutine, when the process
	// has exited and been reaped.
	Start(spec *Spec, exited func(Exit)) (pid int, output io.ReadCloser, err error)
	// Kill sends sig to process pid, or to the process group -pid when pid
	// is negative, as kill(2) does.
	Kill(pid int, sig syscall.Signal) error
	// Notify relays the incoming signals sigs to the returned channel until
	// stop is called.
	Notify(sigs ...os.Signal) (c <-chan os.Signal, stop func())
	// Now is the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless the
	// timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer made by OS.AfterFunc; *time.Timer is one.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// Spec describes a worker process to start.
type Spec struct {
	Path string
	Argv []string
	Env  []string
	// Dir is the working directory, inside Chroot when that is set.
	Dir        string
	Chroot     string
	Credential *syscall.Credential
	// Stdin is the listening socket, the worker's fd 0.
	Stdin *os.File
	// ExtraFiles become the worker's fds from 3 on.
	ExtraFiles []*os.File
}

// Exit is how a worker process ended.
type Exit struct {
	// Success is true when the process exited with status 0.
	Success bool
	// Status says how it ended, as os.ProcessState's String does:
	// "exit status 1", "signal: killed".
	Status string
}

// realOS is the operating system itself.
type realOS struct{}

// Start starts the process from the spawning thread (see spawn.go) in a
// process group of its own, to be killed when the master dies.
func (realOS) Start(spec *Spec, exited func(Exit)) (int, io.ReadCloser, error) {
	// A pipe of our own rather than exec's copying goroutine: Wait must
	// not wait for a grandchild that keeps the worker's output open.
	out, outW, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("creating output pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:       spec.Path,
		Args:       spec.Argv,
		Env:        spec.Env,
		Dir:        spec.Dir,
		Stdin:      spec.Stdin,
		Stdout:     outW,
		Stderr:     outW,
		ExtraFiles: spec.ExtraFiles,
		SysProcAttr: &syscall.SysProcAttr{
			// Workers die with the master, and get signals only from it.
			Pdeathsig:  syscall.SIGKILL,
			Setpgid:    true,
			Chroot:     spec.Chroot,
			Credential: spec.Credential,
		},
	}
	err = startCmd(cmd)
	outW.Close()
	if err != nil {
		out.Close()
		return 0, nil, fmt.Errorf("starting %s: %w", spec.Path, err)
	}
	go func() {
		err := cmd.Wait()
		var e Exit
		switch {
		case cmd.ProcessState != nil:
			e = Exit{Success: cmd.ProcessState.Success(), Status: cmd.ProcessState.String()}
		case err != nil:
			e = Exit{Status: err.Error()}
		default:
			e = Exit{Status: "unknown"}
		}
		exited(e)
	}()
	return cmd.Process.Pid, out, nil
}

func (realOS) Kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

func (realOS) Notify(sigs ...os.Signal) (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 8)
	signal.Notify(c, sigs...)
	return c, func() { signal.Stop(c) }
}

func (realOS) Now() time.Time { return time.Now() }

func (realOS) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
