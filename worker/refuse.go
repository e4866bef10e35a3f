package worker

import (
	"time"

	"golang.org/x/sys/unix"
)

// Closing the shared listening socket on a full stop without resetting a
// connection that reached it. A connection in the socket's queue has been
// answered by the kernel: its client may already have sent a request,
// which the web server cannot retry elsewhere once sent (a POST). So
// nothing may still enter the queue when it is shut down:
//
//   - A unix socket keeps its queue through shutdown(2) and refuses new
//     connects from then on: shut it down first, then accept what is left.
//   - A TCP socket resets its queue at shutdown. First a socket filter
//     drops new connection requests (SYNs without ACK; a client sends it
//     again after a second, and by then the port refuses it, so the
//     balancer moves on), while the handshakes already in flight complete
//     for synGrace; then the queue is taken and the socket shut down.

// synGrace is how long a stopping host lets the handshakes in flight
// complete: several round trips between a web server and its backends.
const synGrace = 50 * time.Millisecond

// dropSYN is a classic BPF program that drops a TCP segment whose flags
// are SYN without ACK, a new connection request, and keeps every other.
// At a TCP socket's filter the data starts at the TCP header, whose flags
// are byte 13.
var dropSYN = [...]unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},
	{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12}, // SYN|ACK
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jt: 0, Jf: 1},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}

// refuseSYN attaches dropSYN to fd when it is a TCP socket; it reports
// whether it did.
func refuseSYN(fd int) (bool, error) {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || (domain != unix.AF_INET && domain != unix.AF_INET6) {
		return false, err
	}
	prog := unix.SockFprog{Len: uint16(len(dropSYN)), Filter: &dropSYN[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return false, err
	}
	return true, nil
}

// closeListener refuses new connections on the listening socket, for this
// worker and every other process that shares it, and returns the
// connections that reached its queue. The loop stops watching it.
func (s *Server) closeListener() []int {
	tcp, err := refuseSYN(s.listenFD)
	if err != nil {
		s.log.Warn("refusing new connections before the shutdown", "err", err)
	}
	queued := s.stopListening()
	if tcp {
		end := time.Now().Add(synGrace)
		for waitFD(s.listenFD, unix.POLLIN, time.Until(end)) == nil {
			queued = s.takeQueued(queued)
		}
	}
	// Shutting the shared socket down refuses new connections for every
	// process that holds it, which closing this worker's descriptor would
	// not.
	if err := unix.Shutdown(s.listenFD, unix.SHUT_RD); err != nil && err != unix.EINVAL && err != unix.ENOTCONN {
		s.log.Warn("shutting down the listening socket", "err", err)
	}
	return s.takeQueued(queued)
}
