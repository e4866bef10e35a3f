package main

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
}

// publicDir makes a temporary directory with mode perm outside t.TempDir,
// whose parents other users cannot enter, removed when the test ends.
func publicDir(t *testing.T, prefix string, perm os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, perm)
	return dir
}

// publicHelper copies the test helper where any user may run it.
func publicHelper(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(helperBin)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, "fcgihelper")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// procIDs returns the Uid and Gid lines' real ids of pid.
func procIDs(t *testing.T, pid int) (uid, gid int, groups string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "Uid:":
			uid, _ = strconv.Atoi(f[1])
		case len(f) > 1 && f[0] == "Gid:":
			gid, _ = strconv.Atoi(f[1])
		case len(f) > 0 && f[0] == "Groups:":
			groups = strings.Join(f[1:], " ")
		}
	}
	return
}

func lookupIDs(t *testing.T, name, group string) (int, int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %s: %v", name, err)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Skipf("no group %s: %v", group, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return uid, gid
}

// TestPrivileges: -u/-g set the workers' user and group, the socket is
// owned by them unless -U/-G say otherwise, -M sets its mode; the master
// keeps root.
func TestPrivileges(t *testing.T) {
	needRoot(t)
	uid, gid := lookupIDs(t, "nobody", "nogroup")
	dir := publicDir(t, "magnetd-priv-", 0o755) // the workers must reach the helper
	helper := publicHelper(t, filepath.Join(dir, "bin"))
	sock := filepath.Join(dir, "m.sock")
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "2", "-u", "nobody", "-g", "nogroup", "-M", "0600", "--", helper)
	kids := waitChildren(t, m.pid(), 2, 30*time.Second)
	m.waitLog("fcgihelper: serving", 30*time.Second)
	for _, k := range kids {
		if u, g, groups := procIDs(t, k); u != uid || g != gid || strings.Contains(" "+groups+" ", " 0 ") {
			t.Errorf("worker %d runs as %d:%d groups %q, want %d:%d without group 0", k, u, g, groups, uid, gid)
		}
	}
	if u, _, _ := procIDs(t, m.pid()); u != 0 {
		t.Errorf("master runs as uid %d, want root", u)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %d:%d %v, want %d:%d 0600", st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
	}
	if body, err := request("unix", sock, "", ""); err != nil || !strings.Contains(body, "pid=") {
		t.Errorf("request: %q, %v", body, err)
	}
	m.stop(sock)

	// -U/-G own the socket instead.
	duid, dgid := lookupIDs(t, "daemon", "daemon")
	m = startMaster(t, nil, nil, "-n", "-s", sock, "-u", "nobody", "-U", "daemon", "-G", "daemon", "--", helper)
	m.waitLog("fcgihelper: serving", 30*time.Second)
	fi, _ = os.Stat(sock)
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != duid || int(st.Gid) != dgid {
		t.Errorf("socket owned by %d:%d, want daemon %d:%d", st.Uid, st.Gid, duid, dgid)
	}
}

// TestChroot: -c chroots the workers; the socket path is inside the chroot
// unless -S is given.
func TestChroot(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	publicHelper(t, filepath.Join(root, "bin"))
	os.WriteFile(filepath.Join(root, "page.txt"), []byte("inside the chroot\n"), 0o644)
	m := startMaster(t, nil, nil, "-n", "-c", root, "-s", "/m.sock", "--", "/bin/fcgihelper")
	m.waitLog("fcgihelper: serving", 30*time.Second)
	sock := filepath.Join(root, "m.sock")
	body, err := request("unix", sock, "/page.txt", "")
	if err != nil || !strings.Contains(body, "inside the chroot") {
		t.Errorf("request: %q, %v", body, err)
	}
	m.stop(sock)

	outside := filepath.Join(t.TempDir(), "outside.sock")
	m = startMaster(t, nil, nil, "-n", "-c", root, "-S", "-s", outside, "--", "/bin/fcgihelper")
	m.waitLog("fcgihelper: serving", 30*time.Second)
	if body, err := request("unix", outside, "/page.txt", ""); err != nil || !strings.Contains(body, "inside the chroot") {
		t.Errorf("-S: request: %q, %v", body, err)
	}
}

// TestNotRoot runs magnetd as an ordinary user: the root-only options are
// ignored with a warning, as spawn-fcgi ignores them; a set-uid magnetd is
// refused.
func TestNotRoot(t *testing.T) {
	needRoot(t)
	uid, gid := lookupIDs(t, "nobody", "nogroup")
	dir := publicDir(t, "magnetd-user-", 0o777)
	helper := publicHelper(t, filepath.Join(dir, "bin"))
	bin := filepath.Join(dir, "bin", "magnetd")
	b, _ := os.ReadFile(magnetdBin)
	os.WriteFile(bin, b, 0o755)
	sock := filepath.Join(dir, "m.sock")
	asNobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}

	cmd := exec.Command(bin, "-n", "-s", sock, "-u", "daemon", "-c", "/nonexistent", "-S", "--", helper)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = out, out, asNobody
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if !poll(30*time.Second, func() bool { return strings.Contains(out.String(), "fcgihelper: serving") }) {
		t.Fatalf("no worker serving:\n%s", out)
	}
	for _, w := range []string{"-u/--user is ignored", "-c/--chroot is ignored", "-S/--socket-before-chroot is ignored"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("no warning %q in:\n%s", w, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	// Set-uid root: refused, like spawn-fcgi.
	if err := os.Chmod(bin, 0o4755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "-n", "-s", sock, "--", helper)
	out = &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = out, out, asNobody
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	poll(30*time.Second, func() bool { return exited() || strings.Contains(out.String(), "starting workers") })
	if !exited() {
		// Still running: the set-uid bit had no effect here (a nosuid
		// mount or no_new_privs), so there was nothing to refuse.
		cmd.Process.Kill()
		<-done
		t.Logf("set-uid bit not effective in this environment, nothing to refuse; output %q", out)
		return
	}
	if cmd.ProcessState.ExitCode() != 255 || !strings.Contains(out.String(), "set-uid") {
		t.Errorf("set-uid magnetd: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}
}
