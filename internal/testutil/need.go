package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run as continuous integration ($CI=true),
// where every dependency of the suite is installed (.ci/deps test).
func CI() bool { return os.Getenv("CI") == "true" }

// Missing ends a test whose dependency what is not installed: a skip on a
// developer's machine, a failure under CI, where a skip would hide that
// the case was never run.
func Missing(t testing.TB, what, debianPackage string, err error) {
	t.Helper()
	msg := what + " is needed: apt-get install -y " + debianPackage + " (.ci/deps test)"
	if err != nil {
		msg += ": " + err.Error()
	}
	if CI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// LookPath returns the path of program name (a name on $PATH or a path),
// or ends the test through Missing, naming the Debian package that
// provides it.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, debianPackage, err)
	}
	return p
}

// NeedFile ends the test through Missing unless path (a header, a
// library) exists.
func NeedFile(t testing.TB, path, debianPackage string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, path, debianPackage, err)
	}
}
