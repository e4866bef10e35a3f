// Package socket binds and inherits the listening sockets FastCGI workers
// accept on, with spawn-fcgi's rules for unix socket paths (refuse one in
// use, replace a stale one, set mode and owner). magnetd and a standalone
// magnet-worker both use it.
package socket

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSocketInUse reports that something already answers on a unix socket
// path, so it must not be removed or rebound.
var ErrSocketInUse = errors.New("socket is already in use")

// ListenConfig describes the socket magnetd binds for its workers, with the
// meanings of spawn-fcgi's options.
type ListenConfig struct {
	// Path is a unix socket path (-s). When empty, Addr and Port are used.
	Path string
	// Addr is an IPv4 or IPv6 address (-a); empty means 0.0.0.0.
	Addr string
	// Port is the TCP port (-p).
	Port int
	// Mode is the unix socket's permission bits (-M).
	Mode os.FileMode
	// UID and GID own the unix socket (-U, -G); -1 leaves one unchanged.
	UID, GID int
	// Backlog is the listen backlog (-b).
	Backlog int
}

// Socket is a listening socket handed to the workers as fd 0.
type Socket struct {
	// File holds the listening descriptor, in blocking mode as FastCGI
	// programs expect it.
	File *os.File
	// Network is "unix" or "tcp".
	Network string
	// Addr is the address clients dial: a path or host:port.
	Addr string
	// owned is the unix socket path to remove on Close; empty when the
	// socket was inherited or is a TCP socket.
	owned string
	// ownedID identifies the file this process bound at owned, so that a
	// socket another instance bound there later is never removed.
	ownedID os.FileInfo
}

// DefaultSocketMode returns spawn-fcgi's default unix socket mode: read and
// write for user and group, as far as the umask allows.
func DefaultSocketMode() os.FileMode {
	mask := unix.Umask(0)
	unix.Umask(mask)
	return os.FileMode(0o660 &^ mask)
}

// Listen binds and listens as spawn-fcgi does. For a unix socket it first
// connects to the path and refuses with ErrSocketInUse when something
// answers; otherwise it removes a stale socket file and binds.
func Listen(c ListenConfig) (*Socket, error) {
	if c.Backlog <= 0 {
		c.Backlog = 1024
	}
	if c.Path != "" {
		return listenUnix(c)
	}
	return listenTCP(c)
}

func listenUnix(c ListenConfig) (*Socket, error) {
	sa := &unix.SockaddrUnix{Name: c.Path}
	if len(c.Path) > 107 {
		return nil, fmt.Errorf("path of the unix domain socket is too long: %s", c.Path)
	}
	if err := probeUnix(sa); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(c.Path)
	switch {
	case err == nil && fi.Mode()&os.ModeSocket == 0:
		return nil, fmt.Errorf("%s exists and is not a socket; not removing it", c.Path)
	case err == nil:
		if err := os.Remove(c.Path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("checking socket path: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating socket: %w", err)
	}
	fail := func(what string, err error, bound bool) (*Socket, error) {
		unix.Close(fd)
		if bound {
			os.Remove(c.Path)
		}
		return nil, fmt.Errorf("%s %s: %w", what, c.Path, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("binding", err, false)
	}
	if err := os.Chmod(c.Path, c.Mode.Perm()); err != nil {
		return fail("changing mode of", err, true)
	}
	if c.UID > 0 || c.GID > 0 {
		uid, gid := c.UID, c.GID
		if uid <= 0 {
			uid = -1
		}
		if gid <= 0 {
			gid = -1
		}
		if err := os.Chown(c.Path, uid, gid); err != nil {
			return fail("changing owner of", err, true)
		}
	}
	if err := unix.Listen(fd, c.Backlog); err != nil {
		return fail("listening on", err, true)
	}
	s := &Socket{File: os.NewFile(uintptr(fd), "unix:"+c.Path), Network: "unix", Addr: c.Path}
	s.SetOwned(c.Path)
	return s, nil
}

// probeUnix connects to the path without blocking: a listener that answers,
// even with a full backlog, means the socket is in use.
func probeUnix(sa *unix.SockaddrUnix) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("creating socket: %w", err)
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, sa)
	switch {
	case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINPROGRESS):
		return fmt.Errorf("%s: %w", sa.Name, ErrSocketInUse)
	}
	return nil
}

func listenTCP(c ListenConfig) (*Socket, error) {
	if c.Port <= 0 || c.Port > 65535 {
		return nil, fmt.Errorf("invalid port: %d", c.Port)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(c.Addr, "["), "]")
	if host == "" {
		host = "0.0.0.0"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("'%s' is not a valid IP address", c.Addr)
	}
	var (
		family int
		sa     unix.Sockaddr
	)
	if ip4 := ip.To4(); ip4 != nil {
		family = unix.AF_INET
		a := &unix.SockaddrInet4{Port: c.Port}
		copy(a.Addr[:], ip4)
		sa = a
	} else {
		family = unix.AF_INET6
		a := &unix.SockaddrInet6{Port: c.Port}
		copy(a.Addr[:], ip.To16())
		sa = a
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating socket: %w", err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(c.Port))
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding %s: %w", addr, err)
	}
	if err := unix.Listen(fd, c.Backlog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return &Socket{File: os.NewFile(uintptr(fd), "tcp:"+addr), Network: "tcp", Addr: addr}, nil
}

// IsListener reports whether fd is a listening stream socket, the way a
// FastCGI program tests its fd 0.
func IsListener(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || v != 1 {
		return false
	}
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil && t == unix.SOCK_STREAM
}

// FileSocket wraps an inherited listening descriptor, such as fd 0 from a
// web server's bin-path spawn or the socket a daemonizing parent passes on.
// When owned is non-empty it names a unix socket path this process should
// remove on Close.
func FileSocket(fd int, owned string) (*Socket, error) {
	if !IsListener(fd) {
		return nil, fmt.Errorf("fd %d is not a listening socket", fd)
	}
	unix.CloseOnExec(fd)
	s := &Socket{File: os.NewFile(uintptr(fd), "inherited")}
	if owned != "" {
		s.SetOwned(owned)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname on fd %d: %w", fd, err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrUnix:
		s.Network, s.Addr = "unix", a.Name
	case *unix.SockaddrInet4:
		s.Network, s.Addr = "tcp", net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		s.Network, s.Addr = "tcp", net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	default:
		return nil, fmt.Errorf("fd %d: unsupported socket family", fd)
	}
	return s, nil
}

// Dial connects to the socket, as a web server would.
func (s *Socket) Dial() (net.Conn, error) {
	addr := s.Addr
	if s.Network == "tcp" {
		// Dial the loopback address when bound to a wildcard.
		host, port, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			if ip.To4() != nil {
				addr = net.JoinHostPort("127.0.0.1", port)
			} else {
				addr = net.JoinHostPort("::1", port)
			}
		}
	}
	return net.Dial(s.Network, addr)
}

// SetOwned makes Close remove the unix socket file now at path.
func (s *Socket) SetOwned(path string) {
	s.owned = path
	s.ownedID, _ = os.Lstat(path)
}

// Unlink removes the unix socket file this process created, if it is still
// the one there, so that new clients fail at once instead of waiting in a
// queue no worker serves any more. The socket itself stays open.
func (s *Socket) Unlink() error {
	if s.owned == "" {
		return nil
	}
	fi, err := os.Lstat(s.owned)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking socket: %w", err)
	}
	if s.ownedID == nil || !os.SameFile(fi, s.ownedID) {
		return nil // another instance's socket now
	}
	if err := os.Remove(s.owned); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing socket: %w", err)
	}
	return nil
}

// Owned reports the unix socket path this process created, or "".
func (s *Socket) Owned() string { return s.owned }

// Close closes the listening descriptor and removes the unix socket file
// this process created, unless another one replaced it.
func (s *Socket) Close() error {
	err := s.File.Close()
	if uerr := s.Unlink(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}
