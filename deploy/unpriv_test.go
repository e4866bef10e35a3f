package deploy

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// traversable opens the test directories dirs and their parents (made
// 0700 by t.TempDir) to everyone, so that a web server running as
// www-data reaches the socket and the scripts in them.
func traversable(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		for _, p := range []string{filepath.Dir(d), d} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// appendFile appends s to the file at path.
func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// ownedBy creates the file at path, empty, owned by user name.
func ownedBy(t *testing.T, name, path string) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	writeFile(t, path, "")
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}
