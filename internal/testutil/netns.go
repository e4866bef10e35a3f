package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// NetLab is a small network of "hosts" on one machine for a test: network
// namespaces of the test's own, each with an address in LabNet on a veth
// pair to one bridge, which lives in a namespace of its own. No address is
// configured outside the namespaces, so nothing the test runs can reach
// another machine. Everything is removed when the test ends.
type NetLab struct {
	t      testing.TB
	ip     string
	prefix string
	hub    string
	hosts  []string
}

// LabNet is the private range the hosts get their addresses in
// (LabNet+".N"/24).
const LabNet = "10.200.0"

// NewNetLab creates the bridge namespace. Without the right to create
// namespaces (not root, no CAP_NET_ADMIN) the test is skipped, or fails
// under CI=true, where the suite runs as root.
func NewNetLab(t testing.TB) *NetLab {
	t.Helper()
	ip := LookPath(t, "ip", "iproute2")
	l := &NetLab{t: t, ip: ip, prefix: fmt.Sprintf("mg%d", os.Getpid()%100000)}
	l.hub = l.prefix + "-hub"
	if out, err := exec.Command(ip, "netns", "add", l.hub).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("network namespaces cannot be created here (root or CAP_NET_ADMIN needed): ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
		if CI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(l.remove)
	l.run("-n", l.hub, "link", "set", "lo", "up")
	l.run("-n", l.hub, "link", "add", "br0", "type", "bridge")
	l.run("-n", l.hub, "link", "set", "br0", "up")
	return l
}

func (l *NetLab) run(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(l.ip, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// AddHost makes a host namespace with address LabNet.n on the bridge, and
// returns the address.
func (l *NetLab) AddHost(name string, n int) string {
	l.t.Helper()
	ns := l.NS(name)
	l.run("netns", "add", ns)
	l.hosts = append(l.hosts, ns)
	veth := "v" + strconv.Itoa(n)
	l.run("-n", l.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.run("-n", l.hub, "link", "set", veth, "master", "br0", "up")
	addr := LabNet + "." + strconv.Itoa(n)
	l.run("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.run("-n", ns, "link", "set", "eth0", "up")
	l.run("-n", ns, "link", "set", "lo", "up")
	return addr
}

// NS is the namespace name of a host.
func (l *NetLab) NS(name string) string { return l.prefix + "-" + name }

// In is the command prefix that runs a program on host name.
func (l *NetLab) In(name string) []string { return []string{l.ip, "netns", "exec", l.NS(name)} }

// Pids lists the processes running on host name.
func (l *NetLab) Pids(name string) []int {
	out, _ := exec.Command(l.ip, "netns", "pids", l.NS(name)).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// remove kills what still runs on the hosts and deletes the namespaces.
func (l *NetLab) remove() {
	for _, ns := range append(l.hosts, l.hub) {
		out, _ := exec.Command(l.ip, "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				killPid(pid)
			}
		}
		if out, err := exec.Command(l.ip, "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Logf("ip netns del %s: %v: %s", ns, err, out)
		}
	}
}

func killPid(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
