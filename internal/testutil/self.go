package testutil

import (
	"os"
	"os/exec"
	"strings"
)

// ExecEnv names the emulator that runs the test binaries when they are of
// another architecture (.ci/qemu-exec sets it). The kernel cannot start
// such a binary by itself, so a test that runs its own binary again as a
// child process must go through the emulator too.
const ExecEnv = "MAGNET_TEST_EXEC"

// SelfCommand returns a command that runs the test binary again with args,
// through the emulator in $MAGNET_TEST_EXEC when there is one.
func SelfCommand(args ...string) *exec.Cmd {
	if wrap := strings.Fields(os.Getenv(ExecEnv)); len(wrap) > 0 {
		return exec.Command(wrap[0], append(append(wrap[1:], os.Args[0]), args...)...)
	}
	return exec.Command(os.Args[0], args...)
}
