package testutil

import (
	"net"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the test binds it; tests that start a server
// on it should be ready to try another.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
