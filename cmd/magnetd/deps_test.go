package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoLuaDeps: magnetd never runs Lua, so it must not link the packages
// that do, and it builds without cgo (TestMain builds it so).
func TestNoLuaDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/magnetd")
	cmd.Dir = repoRoot
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/luabind", "/worker", "/scripts", "aarzilli/golua"} {
			if strings.HasSuffix(dep, banned) || strings.Contains(dep, "golua") {
				t.Errorf("magnetd depends on %s", dep)
			}
		}
	}
}
