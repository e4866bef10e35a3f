package worker

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Loopback is what a TCP listener accepts when no list is given.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ParseClients reads an allow-list: addresses or CIDR prefixes separated
// by commas or spaces (--allowed-clients, FCGI_WEB_SERVER_ADDRS).
func ParseClients(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("allowed client %q: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("allowed client %q: %w", f, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("allowed clients %q: no address", list)
	}
	return out, nil
}

// clientFilter checks the peer address accept4 filled in against the
// allow-list: no getpeername, nothing allocated.
type clientFilter struct {
	allowed []netip.Prefix
	sa      unix.RawSockaddrAny
	salen   uint32
	refused int // since the last log line
	logAt   time.Time
}

func (f *clientFilter) accept(fd int) (int, unix.Errno) {
	f.salen = unix.SizeofSockaddrAny
	n, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&f.sa)), uintptr(unsafe.Pointer(&f.salen)), unix.SOCK_CLOEXEC, 0, 0)
	return int(n), e
}

// peer is the address accept4 gave; unix sockets have none.
func (f *clientFilter) peer() (netip.Addr, bool) {
	switch f.sa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&f.sa))
		return netip.AddrFrom4(sa.Addr), true
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&f.sa))
		return netip.AddrFrom16(sa.Addr).Unmap(), true
	}
	return netip.Addr{}, false
}

func (f *clientFilter) permits() bool {
	a, ok := f.peer()
	if !ok {
		return true
	}
	for _, p := range f.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// refuse logs a refused client, at most once a second with the count of
// those it did not name.
func (f *clientFilter) refuse(log *slog.Logger) {
	f.refused++
	now := time.Now()
	if now.Sub(f.logAt) < time.Second {
		return
	}
	a, _ := f.peer()
	log.Info("refused a client not in the allowed clients", "client", a.String(), "refused", f.refused)
	f.refused = 0
	f.logAt = now
}

// acceptConn accepts the next connection from an allowed client; the
// others are closed at once. Unfiltered (a unix socket, no list), it is
// rawAccept.
func (s *Server) acceptConn() (int, unix.Errno) {
	f := s.filter
	if f == nil {
		return rawAccept(s.listenFD)
	}
	for range 64 {
		fd, errno := f.accept(s.listenFD)
		if errno != 0 || f.permits() {
			return fd, errno
		}
		unix.Close(fd)
		f.refuse(s.log)
	}
	return -1, unix.EAGAIN
}
