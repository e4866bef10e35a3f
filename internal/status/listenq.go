package status

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenQueue asks the kernel about the listen socket f: how many
// connections wait in its accept queue now, and the queue's size
// (the backlog). TCP sockets answer through TCP_INFO, unix sockets
// through sock_diag. It does not change f's blocking mode, which the
// workers share.
func ListenQueue(f *os.File) (queued, size uint64, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, 0, fmt.Errorf("listen queue: %w", err)
	}
	cerr := rc.Control(func(fd uintptr) {
		queued, size, err = listenQueue(int(fd))
	})
	if cerr != nil {
		return 0, 0, fmt.Errorf("listen queue: %w", cerr)
	}
	return queued, size, err
}

func listenQueue(fd int) (queued, size uint64, err error) {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return 0, 0, fmt.Errorf("listen queue: SO_DOMAIN: %w", err)
	}
	switch domain {
	case unix.AF_INET, unix.AF_INET6:
		// On a listening socket the kernel reports the accept queue in
		// tcpi_unacked and the backlog in tcpi_sacked.
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return 0, 0, fmt.Errorf("listen queue: TCP_INFO: %w", err)
		}
		return uint64(ti.Unacked), uint64(ti.Sacked), nil
	case unix.AF_UNIX:
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, 0, fmt.Errorf("listen queue: fstat: %w", err)
		}
		return unixQueue(uint32(st.Ino))
	}
	return 0, 0, fmt.Errorf("listen queue: socket family %d not supported", domain)
}

// Parts of linux/unix_diag.h that golang.org/x/sys/unix does not define.
const (
	udiagShowRQLen = 0x10 // UDIAG_SHOW_RQLEN
	unixDiagRQLen  = 4    // UNIX_DIAG_RQLEN
	unixDiagReqLen = 24   // sizeof(struct unix_diag_req)
	unixDiagMsgLen = 16   // sizeof(struct unix_diag_msg)
	tcpListen      = 10   // TCP_LISTEN, the state of a listening unix socket
)

// unixQueue asks sock_diag for the receive queue of the listening unix
// socket with inode ino: for a listener, the queue length is the number of
// connections waiting to be accepted and the "write queue" is the backlog.
// Kernels built without CONFIG_UNIX_DIAG answer with an error; callers then
// report 0.
func unixQueue(ino uint32) (queued, size uint64, err error) {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, 0, fmt.Errorf("listen queue: netlink socket: %w", err)
	}
	defer unix.Close(s)

	le := binary.LittleEndian // netlink is host-endian; linux/amd64 and arm64 are little-endian
	req := make([]byte, unix.SizeofNlMsghdr+unixDiagReqLen)
	le.PutUint32(req[0:], uint32(len(req)))
	le.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	le.PutUint16(req[6:], unix.NLM_F_REQUEST)
	le.PutUint32(req[8:], 1) // sequence number
	body := req[unix.SizeofNlMsghdr:]
	body[0] = unix.AF_UNIX
	le.PutUint32(body[4:], 1<<tcpListen)
	le.PutUint32(body[8:], ino)
	le.PutUint32(body[12:], udiagShowRQLen)
	le.PutUint32(body[16:], ^uint32(0)) // no cookie
	le.PutUint32(body[20:], ^uint32(0))
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, fmt.Errorf("listen queue: sock_diag request: %w", err)
	}

	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("listen queue: sock_diag answer: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, 0, fmt.Errorf("listen queue: sock_diag answer: %w", err)
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if e := int32(le.Uint32(m.Data)); e < 0 {
					return 0, 0, fmt.Errorf("listen queue: sock_diag: %w", unix.Errno(-e))
				}
			}
			return 0, 0, errors.New("listen queue: sock_diag: empty answer")
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(m.Data) < unixDiagMsgLen || le.Uint32(m.Data[4:]) != ino {
				continue
			}
			// Attributes follow the message: {len u16, type u16, data}, 4-aligned.
			for a := m.Data[unixDiagMsgLen:]; len(a) >= 4; {
				alen := int(le.Uint16(a))
				if alen < 4 || alen > len(a) {
					break
				}
				if le.Uint16(a[2:]) == unixDiagRQLen && alen >= 12 {
					return uint64(le.Uint32(a[4:])), uint64(le.Uint32(a[8:])), nil
				}
				a = a[min((alen+3)&^3, len(a)):]
			}
		}
	}
	return 0, 0, errors.New("listen queue: sock_diag: no queue length in answer")
}
