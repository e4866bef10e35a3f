package supervisor

import (
	"os/exec"
	"runtime"
	"sync"
)

// The kernel delivers PR_SET_PDEATHSIG when the thread that forked a child
// exits, not when the process does (Go issue 27505). Workers therefore are
// all started from one goroutine locked to its OS thread for the life of
// the process, so a worker only gets its SIGKILL when the master dies.

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce     sync.Once
	spawnRequests chan spawnRequest
)

// startCmd starts cmd from the spawning thread.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnRequests = make(chan spawnRequest)
		go spawnLoop(spawnRequests)
	})
	done := make(chan error, 1)
	spawnRequests <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// spawnLoop never returns and never unlocks its thread, so the thread
// outlives every child it starts.
func spawnLoop(reqs <-chan spawnRequest) {
	runtime.LockOSThread()
	for r := range reqs {
		r.done <- r.cmd.Start()
	}
}
