// Package pollconn is the network connection of the database and Redis
// clients that scripts call: a socket read and written on the thread that
// runs the script, which waits in poll(2) as libmysql and libpq do.
//
// Why: a Go-backed Lua function runs on the worker's loop thread, and its
// goroutine is locked to that thread (a call from C always is). A read
// through Go's network poller parks that goroutine, and waking a goroutine
// locked to a thread takes thread switches and the scheduler's hand-offs
// that cost more than a small query's round trip. The waits of a Deadline's
// connections stop at its time, which the binding sets for each call, so
// the statements need no cancellable context either (one makes
// database/sql and the drivers start or wake a goroutine per statement).
package pollconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Deadline is the end of the running call's time, for its connections.
// A driver may read it from a goroutine of its own (pgx closes a
// connection in the background). The zero Deadline is none.
type Deadline struct{ ns atomic.Int64 } // unix nanoseconds; 0: none

// Set sets the time; a zero t is none.
func (d *Deadline) Set(t time.Time) {
	if t.IsZero() {
		d.ns.Store(0)
		return
	}
	d.ns.Store(t.UnixNano())
}

// Get returns the time, zero for none (and for a nil Deadline).
func (d *Deadline) Get() time.Time {
	if d == nil {
		return time.Time{}
	}
	if ns := d.ns.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// until returns the earlier of d's time and t (a zero t: none).
func (d *Deadline) until(t time.Time) time.Time {
	dt := d.Get()
	if t.IsZero() || (!dt.IsZero() && dt.Before(t)) {
		return dt
	}
	return t
}

// pollConn is a connected socket in non-blocking mode whose reads and
// writes wait in poll(2) on the calling thread. It implements net.Conn,
// and syscall.Conn for the MySQL driver's liveness check.
type pollConn struct {
	fd           int
	network      string
	laddr, raddr net.Addr
	dl           *Deadline
	rd, wd       time.Time // set by the driver
	wrote        bool      // the last call was a write: a read waits first
	check        bool      // a write after a read first checks the peer is there (CheckedDialer)
	closed       bool
}

// Dialer returns a dial function, as the drivers take, whose connections
// wait until dl's time, or the deadline the driver sets, whichever comes
// first (dl nil: the driver's only); the connect also stops at the
// context's deadline.
func Dialer(dl *Deadline) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialer(dl, false)
}

// CheckedDialer is Dialer for a driver that learns only from the answer
// that the server closed a connection (pgx): over TCP, a write to such a
// connection can pass, and the statement then fails. The first write of
// each statement on a TCP connection first looks, without waiting, for
// the server's end of the stream (poll's POLLRDHUP), and fails with
// nothing sent if it came; the driver then retries on a new connection.
// Over a unix socket the write itself fails.
func CheckedDialer(dl *Deadline) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialer(dl, true)
}

func dialer(dl *Deadline, check bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		end := dl.Get()
		if t, ok := ctx.Deadline(); ok {
			end = dl.until(t)
		}
		return dialPoll(ctx, dl, network, addr, end, check)
	}
}

// dialPoll connects to addr ("unix", or "tcp" and its kin) by end.
func dialPoll(ctx context.Context, dl *Deadline, network, addr string, end time.Time, check bool) (net.Conn, error) {
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: network, Addr: nil, Err: err} }
	var (
		sa     unix.Sockaddr
		domain int
		raddr  net.Addr
	)
	switch network {
	case "unix":
		sa, domain, raddr = &unix.SockaddrUnix{Name: addr}, unix.AF_UNIX, &net.UnixAddr{Name: addr, Net: "unix"}
	case "tcp", "tcp4", "tcp6":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, opErr(err)
		}
		p, err := net.DefaultResolver.LookupPort(ctx, network, port)
		if err != nil {
			return nil, opErr(err)
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(ips) == 0 {
			if err == nil {
				err = errors.New("no address for " + host)
			}
			return nil, opErr(err)
		}
		ip := ips[0].Unmap()
		if ip.Is4() {
			sa, domain = &unix.SockaddrInet4{Port: p, Addr: ip.As4()}, unix.AF_INET
		} else {
			sa, domain = &unix.SockaddrInet6{Port: p, Addr: ip.As16()}, unix.AF_INET6
		}
		raddr = &net.TCPAddr{IP: ip.AsSlice(), Port: p}
	default:
		return nil, opErr(errors.New("unsupported network " + strconv.Quote(network)))
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, opErr(os.NewSyscallError("socket", err))
	}
	c := &pollConn{fd: fd, network: network, raddr: raddr, dl: dl, check: check && domain != unix.AF_UNIX}
	if domain != unix.AF_UNIX {
		// As Go's dialer: no Nagle delay, and keep-alive probes that
		// find a peer that went away.
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	}
	err = unix.Connect(fd, sa)
	for err == unix.EINTR {
		err = unix.Connect(fd, sa)
	}
	if err == unix.EINPROGRESS {
		if err = c.wait(unix.POLLOUT, end); err == nil {
			var so int
			so, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && so != 0 {
				err = unix.Errno(so)
			}
		}
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, opErr(err)
		}
		return nil, opErr(os.NewSyscallError("connect", err))
	}
	if la, err := unix.Getsockname(fd); err == nil {
		c.laddr = sockaddrAddr(la)
	}
	return c, nil
}

func sockaddrAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

// rawWaitMax is how long a wait may run as a raw system call. The Go
// scheduler does not see a raw call leave its thread, so its monitor does
// not wake to take the processor over and another thread to hand it back,
// which for a round trip of tens of microseconds costs more than the round
// trip; past this, a wait goes through the scheduler, so that the garbage
// collector and the worker's other goroutines are not held up by it.
const rawWaitMax = time.Millisecond

// wait waits in poll(2) until fd is ready for events, or end passes.
func (c *pollConn) wait(events int16, end time.Time) error {
	fds := [1]unix.PollFd{{Fd: int32(c.fd), Events: events}}
	for raw := true; ; {
		d := time.Duration(-1)
		if !end.IsZero() {
			if d = time.Until(end); d <= 0 {
				return os.ErrDeadlineExceeded
			}
		}
		var n int
		var err error
		if raw {
			raw = false
			if d < 0 || d > rawWaitMax {
				d = rawWaitMax
			}
			n, err = rawPoll(&fds[0], d)
		} else {
			ms := -1
			if d >= 0 {
				ms = int((d + time.Millisecond - 1) / time.Millisecond)
			}
			n, err = unix.Poll(fds[:], ms)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return os.NewSyscallError("poll", err)
		case n > 0:
			return nil
		}
	}
}

// rawPoll is poll(2) on one descriptor for at most d, made as a raw system
// call.
func rawPoll(fd *unix.PollFd, d time.Duration) (int, error) {
	ts := unix.NsecToTimespec(int64(d))
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(fd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawIO reads or writes the non-blocking socket fd without telling the
// scheduler (RawSyscall): the call returns at once, and the runtime's
// entry and exit of a system call cost more than a small query's read.
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	var b unsafe.Pointer
	if len(p) > 0 {
		b = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(b), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func (c *pollConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, c.opErr("read", net.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.wrote {
		// The answer to what was just sent is not there yet: wait
		// before the read rather than after an empty one.
		c.wrote = false
		if err := c.wait(unix.POLLIN, c.dl.until(c.rd)); err != nil {
			return 0, c.opErr("read", err)
		}
	}
	for {
		n, err := rawIO(unix.SYS_READ, c.fd, p)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := c.wait(unix.POLLIN, c.dl.until(c.rd)); err != nil {
				return 0, c.opErr("read", err)
			}
			continue
		}
		return 0, c.opErr("read", os.NewSyscallError("read", err))
	}
}

func (c *pollConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, c.opErr("write", net.ErrClosed)
	}
	if c.check && !c.wrote && c.peerClosed() {
		return 0, c.opErr("write", os.NewSyscallError("write", unix.EPIPE))
	}
	c.wrote = true
	done := 0
	for done < len(p) {
		n, err := rawIO(unix.SYS_WRITE, c.fd, p[done:])
		switch {
		case err == nil:
			done += n
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := c.wait(unix.POLLOUT, c.dl.until(c.wd)); err != nil {
				return done, c.opErr("write", err)
			}
		default:
			return done, c.opErr("write", os.NewSyscallError("write", err))
		}
	}
	return done, nil
}

// peerClosed reports that the peer ended its side of the stream, or
// reset it, looking without waiting.
func (c *pollConn) peerClosed() bool {
	fd := unix.PollFd{Fd: int32(c.fd), Events: unix.POLLIN | unix.POLLRDHUP}
	n, err := rawPoll(&fd, 0)
	return err == nil && n > 0 && fd.Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}

func (c *pollConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Source: c.laddr, Addr: c.raddr, Err: err}
}

func (c *pollConn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return unix.Close(c.fd)
}

func (c *pollConn) LocalAddr() net.Addr  { return c.laddr }
func (c *pollConn) RemoteAddr() net.Addr { return c.raddr }

func (c *pollConn) SetDeadline(t time.Time) error {
	c.rd, c.wd = t, t
	return nil
}
func (c *pollConn) SetReadDeadline(t time.Time) error  { c.rd = t; return nil }
func (c *pollConn) SetWriteDeadline(t time.Time) error { c.wd = t; return nil }

// SyscallConn gives the descriptor to the MySQL driver's check, before it
// reuses an idle connection, that the server has not closed it.
func (c *pollConn) SyscallConn() (syscall.RawConn, error) { return rawConn{c}, nil }

type rawConn struct{ c *pollConn }

func (r rawConn) Control(f func(fd uintptr)) error {
	f(uintptr(r.c.fd))
	return nil
}

func (r rawConn) Read(f func(fd uintptr) bool) error {
	for !f(uintptr(r.c.fd)) {
		if err := r.c.wait(unix.POLLIN, r.c.dl.until(r.c.rd)); err != nil {
			return err
		}
	}
	return nil
}

func (r rawConn) Write(f func(fd uintptr) bool) error {
	for !f(uintptr(r.c.fd)) {
		if err := r.c.wait(unix.POLLOUT, r.c.dl.until(r.c.wd)); err != nil {
			return err
		}
	}
	return nil
}
