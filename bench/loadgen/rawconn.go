package main

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// rawConn is a blocking socket used through plain system calls: one
// write and usually one read per request, no poller. Goroutines that use
// it block their OS thread, so run sets GOMAXPROCS above the number of
// connections.
type rawConn struct {
	mu     sync.Mutex // guards fd against shutdown from another goroutine
	fd     int
	closed bool
}

// dialer opens connections to one address, resolved once. A dialer is
// used by one goroutine at a time.
type dialer struct {
	network, addr string
	family        int
	sa            syscall.Sockaddr
	tcp           bool
}

func newDialer(network, addr string) (*dialer, error) {
	d, err := newRawDialer(network, addr)
	if err != nil {
		return nil, err
	}
	d.network, d.addr = network, addr
	return d, nil
}

func newRawDialer(network, addr string) (*dialer, error) {
	switch network {
	case "unix":
		return &dialer{family: syscall.AF_UNIX, sa: &syscall.SockaddrUnix{Name: addr}}, nil
	case "tcp", "tcp4", "tcp6":
		a, err := net.ResolveTCPAddr(network, addr)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", addr, err)
		}
		if ip4 := a.IP.To4(); ip4 != nil {
			sa := &syscall.SockaddrInet4{Port: a.Port}
			copy(sa.Addr[:], ip4)
			return &dialer{family: syscall.AF_INET, sa: sa, tcp: true}, nil
		}
		sa := &syscall.SockaddrInet6{Port: a.Port}
		copy(sa.Addr[:], a.IP.To16())
		return &dialer{family: syscall.AF_INET6, sa: sa, tcp: true}, nil
	}
	return nil, fmt.Errorf("unknown network %q", network)
}

// clone returns a copy of d for one goroutine: the system call package
// writes into a Sockaddr when it uses it.
func (d *dialer) clone() *dialer {
	c := *d
	switch sa := d.sa.(type) {
	case *syscall.SockaddrUnix:
		cp := *sa
		c.sa = &cp
	case *syscall.SockaddrInet4:
		cp := *sa
		c.sa = &cp
	case *syscall.SockaddrInet6:
		cp := *sa
		c.sa = &cp
	}
	return &c
}

// dial connects a new blocking socket.
func (d *dialer) dial() (*rawConn, error) {
	fd, err := syscall.Socket(d.family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	for {
		err = syscall.Connect(fd, d.sa)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("connect: %w", err)
	}
	if d.tcp {
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	}
	return &rawConn{fd: fd}, nil
}

// Read implements io.Reader for bufio.
func (c *rawConn) Read(b []byte) (int, error) {
	for {
		n, err := syscall.Read(c.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		if n == 0 && len(b) > 0 {
			return 0, errEOF
		}
		return n, nil
	}
}

// Write writes all of b.
func (c *rawConn) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := syscall.Write(c.fd, b[done:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("write: %w", err)
		}
		done += n
	}
	return done, nil
}

// shutdown makes a read or write blocked on c return, from any goroutine.
func (c *rawConn) shutdown() {
	c.mu.Lock()
	if !c.closed {
		syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	}
	c.mu.Unlock()
}

// Close closes the socket.
func (c *rawConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return syscall.Close(c.fd)
}

// conn is what a client needs of a connection: a net.Conn served by the
// Go poller, or a rawConn with -raw.
type conn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	Close() error
	shutdown()
}

// pollConn is a net.Conn served by the Go network poller.
type pollConn struct{ net.Conn }

func (c pollConn) shutdown() { c.SetDeadline(time.Now()) }

// dialConn connects a poller connection, or a raw one when raw is set.
func (d *dialer) dialConn(raw bool) (conn, error) {
	if raw {
		return d.dial()
	}
	nc, err := net.Dial(d.network, d.addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return pollConn{nc}, nil
}
