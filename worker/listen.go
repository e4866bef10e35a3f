package worker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FastCGI's FCGI_LISTENSOCK_FILENO: a web server or spawner hands the
// listening socket over as fd 0.
const listenSockFD = 0

// InheritedListener reports whether fd 0 is a listening socket, the way
// libfcgi decides it runs as a FastCGI program: getpeername fails with
// ENOTCONN on a socket that is not connected.
func InheritedListener() bool {
	if _, err := unix.Getpeername(listenSockFD); err != unix.ENOTCONN {
		return false
	}
	v, err := unix.GetsockoptInt(listenSockFD, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// Listen binds addr, a unix socket path or host:port, and returns the
// listening fd. A unix socket path that something still answers on is
// refused; a stale socket file is replaced.
func Listen(addr string, backlog int) (int, error) {
	if backlog <= 0 {
		backlog = 1024
	}
	if isUnixAddr(addr) {
		return listenUnix(addr, backlog)
	}
	return listenTCP(addr, backlog)
}

func isUnixAddr(addr string) bool {
	if strings.HasPrefix(addr, "unix:") || strings.ContainsRune(addr, '/') {
		return true
	}
	_, _, err := net.SplitHostPort(addr)
	return err != nil
}

func listenUnix(path string, backlog int) (int, error) {
	path = strings.TrimPrefix(path, "unix:")
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return -1, fmt.Errorf("listen %s: socket is in use", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return -1, fmt.Errorf("listen %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return -1, fmt.Errorf("listen %s: removing stale socket: %w", path, err)
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", path, err)
	}
	return fd, nil
}

func listenTCP(addr string, backlog int) (int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return -1, fmt.Errorf("listen %s: bad port", addr)
	}
	ip := net.ParseIP(host)
	if host == "" {
		ip = net.IPv4zero
	}
	if ip == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return -1, fmt.Errorf("listen %s: cannot resolve host", addr)
		}
		ip = ips[0]
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ip4 := ip.To4(); ip4 != nil {
		s := &unix.SockaddrInet4{Port: port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		family = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: port}
		copy(s.Addr[:], ip.To16())
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return -1, fmt.Errorf("listen %s: address in use", addr)
		}
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
}
