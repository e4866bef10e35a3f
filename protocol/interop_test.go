package protocol

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// TestCgiFcgiClient serves libfcgi's own client, cgi-fcgi (Debian package
// libfcgi-bin), which sends its environment as params and its stdin as body.
func TestCgiFcgiClient(t *testing.T) {
	path := testutil.LookPath(t, "cgi-fcgi", "libfcgi-bin")
	s := startServer(t, Limits{}, echo)
	body := strings.Repeat("0123456789", 10000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-bind", "-connect", s.l.Addr().String())
	cmd.Env = []string{
		"REQUEST_METHOD=POST",
		"SCRIPT_FILENAME=/srv/www/index.lua",
		"CONTENT_LENGTH=100000",
		"LONG=" + strings.Repeat("x", 500),
	}
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cgi-fcgi: %v\n%s", err, out)
	}
	wantEcho(t, &Response{Stdout: out}, []Pair{
		{"REQUEST_METHOD", "POST"},
		{"SCRIPT_FILENAME", "/srv/www/index.lua"},
		{"LONG", strings.Repeat("x", 500)},
	}, body)
	if errs := s.errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
}

// TestLibfcgiServer runs the Client against a responder built on libfcgi
// (testdata/libfcgi_echo.c, Debian package libfcgi-dev), started the way
// web servers start FastCGI applications: the listen socket on fd 0.
func TestLibfcgiServer(t *testing.T) {
	testutil.NeedFile(t, "/usr/include/fcgiapp.h", "libfcgi-dev")
	cc := testutil.LookPath(t, "cc", "gcc")
	dir := t.TempDir()
	bin := filepath.Join(dir, "echo")
	if out, err := exec.Command(cc, "-o", bin, "testdata/libfcgi_echo.c", "-lfcgi").CombinedOutput(); err != nil {
		t.Fatalf("compiling: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	f, err := ul.File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // the child keeps its copy
	cmd := exec.Command(bin)
	cmd.Stdin = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	c, err := Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	body := strings.Repeat("b", 200000)
	for i := range 3 {
		resp, err := c.Do(&Request{ID: uint16(i + 1), KeepConn: true,
			Params: []Pair{{"SCRIPT_FILENAME", "/x.lua"}, {"LONG", strings.Repeat("v", 1000)}},
			Body:   strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		status, header, got, err := ParseCGI(resp.Stdout)
		if err != nil || status != 201 || header.Get("Content-Type") != "text/plain" {
			t.Fatalf("ParseCGI: %d %v %v", status, header, err)
		}
		if string(got) != "script=/x.lua\n"+body {
			t.Fatalf("body %q", shorten(got))
		}
		if string(resp.Stderr) != "libfcgi stderr\n" || resp.ProtocolStatus != StatusRequestComplete {
			t.Fatalf("response %q %d", resp.Stderr, resp.ProtocolStatus)
		}
	}
}
