// Package testutil holds what the tests of several packages share to build
// and run magnet's programs. It is imported by tests only.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// RepoRoot is the module's root directory.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the magnet module")
	}
	return filepath.Dir(mod), nil
}

// GoBuild builds package pkg (a path relative to the module root, such as
// "./cmd/magnet-worker") into out, with extra environment settings (such
// as "CGO_ENABLED=0") and the build tags in $MAGNET_TAGS (such as
// "luajit") for cgo builds. The error carries the compiler's output.
func GoBuild(out, pkg string, env ...string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", out}
	if tags := os.Getenv("MAGNET_TAGS"); tags != "" && !contains(env, "CGO_ENABLED=0") {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// SyncBuffer collects a process's output while tests poll it; it is safe
// for concurrent use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Alive reports whether process pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, state, _ := statFields(b)
	return state != "Z" && state != "X" && state != ""
}

// Children returns the live child processes of pid whose command name
// starts with prefix ("" for all); the kernel cuts names at 15 bytes.
func Children(pid int, prefix string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, state, ppid := statFields(b)
		if ppid == pid && state != "Z" && strings.HasPrefix(comm, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// statFields parses /proc/<pid>/stat: the command name, the state and the
// parent pid.
func statFields(b []byte) (comm, state string, ppid int) {
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", "", 0
	}
	comm = s[open+1 : end]
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return comm, "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return comm, f[0], ppid
}
