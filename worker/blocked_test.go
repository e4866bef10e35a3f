package worker

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A test that means "the worker is now waiting in X" waits until one of
// this process's threads is blocked in that system call, read from
// /proc/self/task/*/syscall: the number and arguments of the call a
// sleeping thread is in. The worker runs on its own locked thread, so
// its waits are told apart by their arguments.

// sysCall is a blocked thread's system call.
type sysCall struct {
	nr   int64
	args [6]uint64
}

// blockedCalls returns the system calls this process's threads sleep in.
func blockedCalls() []sysCall {
	tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
	var out []sysCall
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 7 { // "running", or "-1 sp pc" outside a system call
			continue
		}
		var c sysCall
		if c.nr, err = strconv.ParseInt(f[0], 10, 64); err != nil || c.nr < 0 {
			continue
		}
		for i := range c.args {
			c.args[i], _ = strconv.ParseUint(strings.TrimPrefix(f[1+i], "0x"), 16, 64)
		}
		out = append(out, c)
	}
	return out
}

// waitBlocked waits until a thread is blocked in a system call that match
// accepts, failing the test after 10 seconds.
func waitBlocked(t testing.TB, what string, match func(sysCall) bool) {
	t.Helper()
	waitBlockedN(t, what, 1, match)
}

// waitBlockedN waits until n threads are blocked, at the same time, in
// system calls that match accepts.
func waitBlockedN(t testing.TB, what string, n int, match func(sysCall) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := 0
		for _, c := range blockedCalls() {
			if match(c) {
				seen++
			}
		}
		if seen >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen in 10s; threads blocked in %v", what, blockedCalls())
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// inEpollWait matches srv's loop asleep in epoll_wait or epoll_pwait: a
// thread blocked with srv's epoll descriptor as the first argument, which
// nothing else blocks on.
func inEpollWait(srv *Server) func(sysCall) bool {
	return onEpoll(srv.epfd)
}

// onEpoll matches a thread asleep in epoll descriptor epfd.
func onEpoll(epfd int) func(sysCall) bool {
	return func(c sysCall) bool { return c.args[0] == uint64(epfd) }
}

// inPoll matches the worker waiting for one connection to become readable
// (unix.POLLIN: a script reads its body) or writable (unix.POLLOUT: the
// client does not take the response): waitFD's ppoll(fds, 1, timeout,
// nil), told by its arguments and the events in its struct pollfd rather
// than by the call's number, which under user-mode emulation (qemu) is
// the host's.
func inPoll(events int16) func(sysCall) bool {
	return func(c sysCall) bool {
		if c.args[1] != 1 || c.args[3] != 0 {
			return false
		}
		ev, err := pollEvents(c.args[0])
		return err == nil && ev == events
	}
}

// pollEvents reads the events field of the struct pollfd at addr in this
// process's memory.
func pollEvents(addr uint64) (int16, error) {
	f, err := os.Open("/proc/self/mem")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [2]byte
	if _, err := f.ReadAt(b[:], int64(addr)+4); err != nil {
		return 0, err
	}
	return int16(binary.NativeEndian.Uint16(b[:])), nil
}

// either matches what any of ms matches.
func either(ms ...func(sysCall) bool) func(sysCall) bool {
	return func(c sysCall) bool {
		for _, m := range ms {
			if m(c) {
				return true
			}
		}
		return false
	}
}
