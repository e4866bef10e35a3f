package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// WaitStopped waits until every thread of pid is stopped (state T), or
// pid has ended or is a zombie, as
// after SIGSTOP: kill returns before a busy multi-threaded server has
// stopped, and a request sent in between would still be answered.
func WaitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if len(tasks) == 0 {
			return nil // the process ended
		}
		stopped := true
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread ended
			}
			// A zombie never stops (its parent may be the stopped one).
			if _, state, _ := statFields(b); state != "T" && state != "t" && state != "Z" && state != "X" {
				stopped = false
				break
			}
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d did not stop within %v", pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}
