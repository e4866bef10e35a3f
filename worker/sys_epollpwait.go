//go:build !amd64

package worker

import "golang.org/x/sys/unix"

// sysEpollWait is epoll_pwait: arm64, riscv64 and loong64 have no
// epoll_wait. With a nil signal mask (the fifth argument, 0 in
// epollWait and epollPoll) it behaves exactly as epoll_wait.
const sysEpollWait = unix.SYS_EPOLL_PWAIT
