//go:build amd64

package worker

import "golang.org/x/sys/unix"

// sysEpollWait is epoll_wait, which amd64 has.
const sysEpollWait = unix.SYS_EPOLL_WAIT
