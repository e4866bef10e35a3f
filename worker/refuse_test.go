package worker

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawListen returns a listening socket bound to sa, owned by the test.
// (Go's net.Listen makes a multipath TCP socket where the kernel has
// them, and those take no socket filter; magnetd binds plain TCP.)
func rawListen(t *testing.T, domain int, sa unix.Sockaddr) int {
	t.Helper()
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	return fd
}

// dialNonblock starts a connect to addr and returns the socket.
func dialNonblock(t *testing.T, domain int, sa unix.Sockaddr) int {
	t.Helper()
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		t.Fatalf("connect: %v", err)
	}
	return fd
}

// TestRefuseSYNTCP: once the filter is on, a connection already queued is
// still accepted, a new connect is left unanswered rather than reset, and
// after the shutdown it is refused.
func TestRefuseSYNTCP(t *testing.T) {
	lfd := rawListen(t, unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	bound, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: bound.(*unix.SockaddrInet4).Port, Addr: [4]byte{127, 0, 0, 1}}
	before := dialNonblock(t, unix.AF_INET, sa)
	if err := waitFD(before, unix.POLLOUT, 5*time.Second); err != nil {
		t.Fatalf("the first connect did not complete: %v", err)
	}
	if ok, err := refuseSYN(lfd); !ok || err != nil {
		t.Fatalf("refuseSYN on a TCP socket: %v %v", ok, err)
	}
	after := dialNonblock(t, unix.AF_INET, sa)
	if err := waitFD(after, unix.POLLOUT, 300*time.Millisecond); err != unix.ETIMEDOUT {
		t.Fatalf("a connect after the filter completed or failed at once (%v): the SYN was not dropped", err)
	}
	unix.SetNonblock(lfd, true)
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatalf("the connection queued before the filter: %v", err)
	}
	unix.Close(nfd)
	if _, _, err := unix.Accept(lfd); err != unix.EAGAIN {
		t.Fatalf("the connect after the filter reached the queue: %v", err)
	}
	if err := unix.Shutdown(lfd, unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	// The client sends its SYN again after about a second; now the port
	// refuses it.
	if err := waitFD(after, unix.POLLOUT, 10*time.Second); err != nil {
		t.Fatalf("the refused connect did not end: %v", err)
	}
	if soerr, _ := unix.GetsockoptInt(after, unix.SOL_SOCKET, unix.SO_ERROR); unix.Errno(soerr) != unix.ECONNREFUSED {
		t.Fatalf("the connect after the shutdown ended with %v, want ECONNREFUSED", unix.Errno(soerr))
	}
}

// TestRefuseUnix: a unix socket needs no filter; after its shutdown a
// connection queued before it is still accepted and a new one is refused.
func TestRefuseUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	lfd := rawListen(t, unix.AF_UNIX, &unix.SockaddrUnix{Name: path})
	if ok, err := refuseSYN(lfd); ok || err != nil {
		t.Fatalf("refuseSYN on a unix socket: %v %v", ok, err)
	}
	sa := &unix.SockaddrUnix{Name: path}
	dialNonblock(t, unix.AF_UNIX, sa)
	if err := unix.Shutdown(lfd, unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("a connect after the shutdown: %v, want ECONNREFUSED", err)
	}
	unix.SetNonblock(lfd, true)
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatalf("the connection queued before the shutdown was not kept: %v", err)
	}
	unix.Close(nfd)
}
