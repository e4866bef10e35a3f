package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/magnet-fcgi/magnet/internal/daemon"
	"github.com/magnet-fcgi/magnet/internal/socket"
)

// listener is the workers' socket with what was made alongside it: the -P
// file and, for --http alone, the private directory the socket lies in.
type listener struct {
	sock      *socket.Socket
	inherited bool        // fd 0 from a web server or spawner, never unlinked
	pid       *pidFile    // nil without -P
	tempDir   string      // removed at exit unless a daemon took it over
	notify    func(error) // in a daemon child, the report to its parent
}

// openListener finds the socket: inherited from a daemonizing parent,
// bound from -s or -a/-p, inherited on fd 0 from a web server, or bound in
// a private directory for --http alone. Except in a daemon child, whose
// parent wrote it, it opens the -P file too: before binding, so that an
// unwritable path binds nothing. On error nothing it made is left.
func openListener(o *options, sockID daemon.Identity, detached bool) (*listener, error) {
	bindPath := o.socketPath
	if bindPath != "" && o.chroot != "" && !o.sockBeforeChroot {
		bindPath = filepath.Join(o.chroot, bindPath)
	}
	switch {
	case detached:
		return childListener(o, bindPath)
	case o.socketPath != "" || o.port != 0 || !socket.IsListener(0) && o.httpAddr != "":
		pid, err := openPIDFile(o.pidFile)
		if err != nil {
			return nil, err
		}
		sock, tempDir, err := bind(o, sockID, bindPath)
		if err != nil {
			pid.abandon()
			return nil, err
		}
		return &listener{sock: sock, pid: pid, tempDir: tempDir}, nil
	case socket.IsListener(0):
		sock, err := socket.FileSocket(0, "")
		if err != nil {
			return nil, err
		}
		pid, err := openPIDFile(o.pidFile)
		if err != nil {
			return nil, err
		}
		return &listener{sock: sock, inherited: true, pid: pid}, nil
	}
	return nil, errors.New("no socket given (use either -p or -s, or start with a listening socket on fd 0)")
}

// childListener takes over, in a daemon child, the socket its parent
// bound at bindPath (or in a private directory for --http alone).
func childListener(o *options, bindPath string) (*listener, error) {
	sock, notify, err := daemon.InheritedSocket(bindPath)
	if err != nil {
		return nil, err // the parent has been told
	}
	l := &listener{sock: sock, pid: childPIDFile(o.pidFile), notify: notify}
	if bindPath == "" && o.port == 0 && sock.Network == "unix" {
		// The parent made a private socket for --http.
		l.tempDir = filepath.Dir(sock.Addr)
		sock.SetOwned(sock.Addr)
	}
	return l, nil
}

// bind binds the socket of -s or -a/-p, or for --http alone one in a new
// private directory, which it returns. On error it removes the directory.
func bind(o *options, sockID daemon.Identity, bindPath string) (*socket.Socket, string, error) {
	lc := socket.ListenConfig{Path: bindPath, Addr: o.addr, Port: o.port, Mode: o.mode, UID: sockID.UID, GID: sockID.GID, Backlog: o.backlog}
	var tempDir string
	if bindPath == "" && o.port == 0 {
		var err error
		if tempDir, err = os.MkdirTemp("", "magnetd-"); err != nil {
			return nil, "", fmt.Errorf("--http: %w", err)
		}
		// Only the master connects; the workers accept on fd 0.
		lc.Path, lc.Mode, lc.UID, lc.GID = filepath.Join(tempDir, "fcgi.sock"), 0o600, 0, 0
	}
	sock, err := socket.Listen(lc)
	if err != nil {
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
		return nil, "", err
	}
	return sock, tempDir, nil
}

// ready is what the pool calls once the workers run: a daemon child's
// report to its parent, nil otherwise.
func (l *listener) ready() func() {
	if l.notify == nil {
		return nil
	}
	return func() { l.notify(nil) }
}

// abandon undoes openListener before the pid file is written: it abandons
// the pid file, closes the socket (removing a bound unix socket file) and
// removes the private directory.
func (l *listener) abandon() {
	l.pid.abandon()
	l.sock.Close()
	l.removeTempDir()
}

// close is the clean-up at the master's exit with err: it closes the
// socket (removing a bound unix socket file), removes the pid file if it
// holds this process's pid and the private directory, and a daemon child
// then reports a failed start to its parent.
func (l *listener) close(err error, log *slog.Logger) {
	l.sock.Close()
	if rerr := l.pid.remove(); rerr != nil {
		log.Warn("removing pid file", "err", rerr)
	}
	l.removeTempDir()
	if err != nil && l.notify != nil {
		l.notify(err) // the parent reports it and exits 255
	}
}

func (l *listener) removeTempDir() {
	if l.tempDir != "" {
		os.RemoveAll(l.tempDir)
	}
}
