// Package handoff is the wire format of the channel over which magnetd and
// its workers move idle FastCGI connections: a SOCK_SEQPACKET socketpair
// per worker, one byte per message, connections as SCM_RIGHTS. magnetd's
// side is package supervisor, the worker's side package worker; both
// speak what is defined here, so the two cannot drift apart.
package handoff

import "golang.org/x/sys/unix"

// EnvVar names the worker's end of the channel: the descriptor number.
const EnvVar = "MAGNET_HANDOFF"

// The messages, one byte each:
//
//	worker → magnetd: Ready (I serve: send me connections), Conns (take
//	these), Leaving (I am stopping)
//	magnetd → worker: Conns (serve these), Ack (nothing more will come;
//	its second byte is 1 when no worker will take connections: a full
//	stop), Release (you have been inside one request too long: hand over
//	your idle connections), Balance (hand over the number of idle
//	connections in the second byte)
const (
	Conns   = 'F'
	Leaving = 'L'
	Ack     = 'A'
	Release = 'R'
	Balance = 'B'
	Ready   = 'Y'
)

// MaxFDs is the most descriptors one message carries (the kernel's
// SCM_MAX_FD is 253).
const MaxFDs = 64

// ParseRights returns the descriptors an SCM_RIGHTS control message
// carried, marked close-on-exec; nil when oob holds none.
func ParseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		if r, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, r...)
		}
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	return fds
}

// CloseAll closes fds, as when no one can take them.
func CloseAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
