package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// The cluster on one machine: network namespaces of the test's own (see
// testutil.NetLab) for a web host (nginx, then lighttpd), three magnet
// hosts, a Redis host and a MariaDB host. Each magnet host sees its own copy of the
// scripts at the same path (a bind mount in a mount namespace of its
// own), so a host can be restarted with new code.

const (
	clusterPort   = "9000"
	clusterClient = 8 // load clients, each with its own session
)

type cluster struct {
	t       *testing.T
	lab     *testutil.NetLab
	dir     string
	srv     string // the scripts' path on every host
	web     string // the web host's address
	redis   string // host:port
	db      *testutil.MariaDB
	magnetd string
	addrs   map[string]string
	hosts   map[string]*proc
}

var clusterHosts = []string{"h1", "h2", "h3"}

// appLua stores a POST's body on the database host, over a connection
// kept in _G, and answers it with its body, and a GET with its query,
// after the version of the code. Its format's arguments: the version, the
// database host and port.
const appLua = `local VERSION = %q
magnet.header["Content-Type"] = "text/plain"
local r = magnet.request
local body = r.method == "POST" and r.body() or nil
if body then
	_G.db = _G.db or assert(luasql.mysql():connect("magnet", "magnet", "magnet", %q, %s))
	assert(db:execute("INSERT INTO posts (body) VALUES (?)", body))
end
io.write("app=", VERSION, " echo=", body or r.query or "")
`

func newCluster(t *testing.T) *cluster {
	t.Helper()
	needWorker(t)
	lab := testutil.NewNetLab(t)
	testutil.LookPath(t, nginxBin, "nginx-light")
	testutil.LookPath(t, lighttpdBin, "lighttpd")
	testutil.LookPath(t, "unshare", "util-linux")
	testutil.LookPath(t, "bash", "bash")
	c := &cluster{t: t, lab: lab, dir: t.TempDir(), magnetd: buildMagnetd(t),
		addrs: map[string]string{}, hosts: map[string]*proc{}}
	c.web = lab.AddHost("web", 1)
	for i, h := range clusterHosts {
		c.addrs[h] = lab.AddHost(h, 11+i)
	}
	raddr := lab.AddHost("redis", 5)
	r := testutil.StartRedisIn(t, lab.In("redis"), raddr, 6379)
	c.redis = r.Addr
	daddr := lab.AddHost("db", 6)
	db, err := testutil.StartMariaDBIn(lab.In("db"), daddr, 3306)
	if errors.Is(err, testutil.ErrNoServer) {
		testutil.Missing(t, "MariaDB", "mariadb-server", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Query("CREATE TABLE magnet.posts (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(200) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	c.db = db
	c.srv = filepath.Join(c.dir, "srv")
	if err := os.MkdirAll(c.srv, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range clusterHosts {
		c.writeCode(h, "v1")
	}
	return c
}

// writeCode puts version v of the scripts into host h's own directory:
// app.lua, and the sessions example with its one line changed to Redis.
func (c *cluster) writeCode(h, v string) {
	c.t.Helper()
	dir := filepath.Join(c.dir, h+"-srv")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	sessions := deployRepoFile(c.t, "examples/sessions.lua",
		`local store = shared_store("sessions") -- STORE`, fmt.Sprintf(`local store = redis_store(%q) -- STORE`, c.redis))
	writeFile(c.t, filepath.Join(dir, "sessions.lua"), sessions)
	host, port, _ := net.SplitHostPort(c.db.Addr)
	writeFile(c.t, filepath.Join(dir, "app.lua"), fmt.Sprintf(appLua, v, host, port))
}

// start runs magnetd on host h: TCP on its address, accepting only the
// web host, its own scripts bind-mounted at c.srv.
func (c *cluster) start(h string) {
	c.t.Helper()
	argv := append(c.lab.In(h), "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind "$1" "$2" && shift 2 && exec "$@"`, "sh",
		filepath.Join(c.dir, h+"-srv"), c.srv,
		c.magnetd, "-n", "-a", c.addrs[h], "-p", clusterPort, "-F", "2",
		"--allowed-clients", c.web, "--ping-path", "/ping", "--drain-timeout", "20s",
		"--docroot", c.srv)
	c.hosts[h] = startProc(c.t, argv[0], argv[1:], nil)
	waitFor(c.t, startTimeout, "magnetd on "+h, func() error {
		if c.hosts[h].exited() {
			return fmt.Errorf("exited:\n%s", c.hosts[h].out.String())
		}
		// a connection from the web host, the one allowed client
		return c.in("web", "timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/"+c.addrs[h]+"/"+clusterPort).Run()
	})
}

func (c *cluster) in(host string, args ...string) *exec.Cmd {
	argv := append(c.lab.In(host), args...)
	return exec.Command(argv[0], argv[1:]...)
}

// deployRepoFile reads a file of the repository and replaces each old
// string of the (old, new) pairs everywhere; each must be there.
func deployRepoFile(t *testing.T, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s no longer holds %q", name, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startNginx runs deploy/nginx-cluster.conf on the web host, listening on a
// unix socket the test reaches; keepalive_timeout is shortened so that a
// drain ends within seconds, and each answer names the host in
// X-Upstream.
func (c *cluster) startNginx() *http.Client {
	c.t.Helper()
	dir := filepath.Join(c.dir, "nginx")
	os.MkdirAll(dir, 0o755)
	sock := filepath.Join(dir, "http.sock")
	pairs := []string{"listen 80;", "listen unix:" + sock + ";",
		"keepalive_timeout 10s;", "keepalive_timeout 2s;",
		"fastcgi_pass magnet_cluster;", "fastcgi_pass magnet_cluster;\n\t\tadd_header X-Upstream $upstream_addr always;",
		"include fastcgi_params;", "include /etc/nginx/fastcgi_params;",
		"/srv/magnet", c.srv}
	for i, h := range clusterHosts {
		pairs = append(pairs, fmt.Sprintf("10.0.0.%d:9000", 11+i), c.addrs[h]+":"+clusterPort)
	}
	writeFile(c.t, filepath.Join(dir, "cluster.conf"), deployRepoFile(c.t, "deploy/nginx-cluster.conf", pairs...))
	conf := filepath.Join(dir, "nginx.conf")
	writeFile(c.t, conf, fmt.Sprintf(`user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log notice;
events { worker_connections 512; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	fastcgi_temp_path %[1]s/fastcgi;
	proxy_temp_path %[1]s/proxy;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	include %[1]s/cluster.conf;
}
`, dir))
	return c.startWeb("nginx", sock, nginxBin, "-c", conf, "-g", "daemon off;")
}

// startLighttpd runs deploy/lighttpd-cluster.conf on the web host.
func (c *cluster) startLighttpd() *http.Client {
	c.t.Helper()
	dir := filepath.Join(c.dir, "lighttpd")
	os.MkdirAll(dir, 0o755)
	sock := filepath.Join(dir, "http.sock")
	pairs := []string{"/srv/magnet", c.srv}
	for i, h := range clusterHosts {
		pairs = append(pairs, fmt.Sprintf(`"host" => "10.0.0.%d", "port" => 9000`, 11+i),
			fmt.Sprintf(`"host" => %q, "port" => %s`, c.addrs[h], clusterPort))
	}
	writeFile(c.t, filepath.Join(dir, "cluster.conf"), deployRepoFile(c.t, "deploy/lighttpd-cluster.conf", pairs...))
	conf := filepath.Join(dir, "lighttpd.conf")
	writeFile(c.t, conf, fmt.Sprintf(`server.document-root = %q
server.bind = %q
server.errorlog = %q
server.modules = ( "mod_access" )
include %q
`, c.srv, sock, filepath.Join(dir, "error.log"), filepath.Join(dir, "cluster.conf")))
	return c.startWeb("lighttpd", sock, lighttpdBin, "-D", "-f", conf)
}

// startWeb runs a web server (argv) on the web host and waits until its
// unix socket sock takes connections; it returns a client of that socket.
func (c *cluster) startWeb(name, sock string, argv ...string) *http.Client {
	c.t.Helper()
	argv = append(c.lab.In("web"), argv...)
	p := startProc(c.t, argv[0], argv[1:], nil)
	waitFor(c.t, startTimeout, name, func() error {
		if p.exited() {
			return fmt.Errorf("exited:\n%s", p.out.String())
		}
		cn, err := net.Dial("unix", sock)
		if err == nil {
			cn.Close()
		}
		return err
	})
	return unixClient(sock)
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 2 * clusterClient,
	}}
}

// result is one checked request of the load.
type result struct {
	phase  int32
	method string
	body   string // a POST's
	host   string // the answering magnet host, from X-Upstream (nginx)
	ver    string
	err    error
}

// load is clusterClient clients, each sending in turn a POST to app.lua
// (its unique body must come back) and a GET of sessions.lua with its own
// session cookie (the visit count must go up: a session never restarts).
type load struct {
	c      *http.Client
	phase  atomic.Int32
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	res    []result
	hosts  []map[string]bool // per client: the hosts its session visited
	byAddr map[string]string
}

func startClusterLoad(c *http.Client, byAddr map[string]string) *load {
	l := &load{c: c, stop: make(chan struct{}), byAddr: byAddr, hosts: make([]map[string]bool, clusterClient)}
	for i := range clusterClient {
		l.hosts[i] = map[string]bool{}
		l.wg.Add(1)
		go l.client(i)
	}
	return l
}

func (l *load) client(i int) {
	defer l.wg.Done()
	sid, visits := "", 0
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		default:
		}
		phase := l.phase.Load()
		body := fmt.Sprintf("client %d post %d %x", i, seq, rand.Uint64())
		req, _ := http.NewRequest("POST", "http://cluster/app.lua", strings.NewReader(body))
		res := l.do(req, phase, func(r *http.Response, b string) error {
			if r.StatusCode != 200 || !strings.HasPrefix(b, "app=v") || !strings.HasSuffix(b, " echo="+body) {
				return fmt.Errorf("status %d body %.80q", r.StatusCode, b)
			}
			return nil
		})
		res.body = body
		l.add(res)
		req, _ = http.NewRequest("GET", "http://cluster/sessions.lua", nil)
		if sid != "" {
			req.Header.Set("Cookie", "sid="+sid)
		}
		res = l.do(req, phase, func(r *http.Response, b string) error {
			var n int
			if r.StatusCode != 200 {
				return fmt.Errorf("status %d body %.80q", r.StatusCode, b)
			}
			if _, err := fmt.Sscanf(b, "visits %d", &n); err != nil {
				return fmt.Errorf("body %.80q", b)
			}
			var got string
			for _, ck := range r.Cookies() {
				if ck.Name == "sid" {
					got = ck.Value
				}
			}
			if sid != "" && (got != sid || n <= visits) {
				return fmt.Errorf("session lost: sid %s visit %d, then sid %s visit %d", sid, visits, got, n)
			}
			sid, visits = got, n
			return nil
		})
		if res.err == nil && res.host != "" {
			l.mu.Lock()
			l.hosts[i][res.host] = true
			l.mu.Unlock()
		}
		l.add(res)
	}
}

func (l *load) do(req *http.Request, phase int32, check func(*http.Response, string) error) result {
	res := result{phase: phase, method: req.Method}
	r, err := l.c.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		res.err = err
		return res
	}
	// after retries, the last address answered
	ups := r.Header.Get("X-Upstream")
	up := ups
	if i := strings.LastIndex(up, ", "); i >= 0 {
		up = up[i+2:]
	}
	res.host = l.byAddr[up]
	s := strings.TrimSuffix(string(b), "\n")
	if v, _, ok := strings.Cut(strings.TrimPrefix(s, "app="), " "); ok && strings.HasPrefix(s, "app=") {
		res.ver = v
	}
	if res.err = check(r, s); res.err != nil {
		res.err = fmt.Errorf("%w (upstreams tried: %s)", res.err, ups)
	}
	return res
}

func (l *load) add(r result) {
	l.mu.Lock()
	l.res = append(l.res, r)
	l.mu.Unlock()
}

// count returns the answered and failed requests of a phase (-1: all)
// and method ("": both), with up to 5 errors.
func (l *load) count(phase int32, method string) (ok, failed int, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.res {
		if (phase >= 0 && r.phase != phase) || (method != "" && r.method != method) {
			continue
		}
		if r.err != nil {
			failed++
			if len(errs) < 5 {
				errs = append(errs, r.method+": "+r.err.Error())
			}
			continue
		}
		ok++
	}
	return ok, failed, errs
}

// answeredBy counts the POSTs host answered with version v in a phase.
func (l *load) answeredBy(host, v string, phase int32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.res {
		if r.err == nil && r.phase == phase && r.host == host && r.ver == v {
			n++
		}
	}
	return n
}

// saw reports whether host answered version v.
func (l *load) saw(host, v string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.res {
		if r.err == nil && r.host == host && r.ver == v {
			return true
		}
	}
	return false
}

func (l *load) waitAnswered(t *testing.T, n int) {
	t.Helper()
	start, _, _ := l.count(-1, "")
	waitFor(t, 30*time.Second, fmt.Sprintf("%d more answers", n), func() error {
		if ok, failed, errs := l.count(-1, ""); ok < start+n {
			return fmt.Errorf("%d answered, %d failed so far: %v", ok-start, failed, errs)
		}
		return nil
	})
}

func (l *load) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Phases of the load.
const (
	phaseWarm int32 = iota
	phaseDrain
	phaseKill
)

// TestCluster: nginx in front of three magnet hosts, Redis and MariaDB. Under a
// POST and GET load with every answer checked, h1 is drained (SIGTERM)
// and restarted with new code: no request fails. Then h2 is killed
// (SIGKILL to everything on it): nginx retries GETs on another host; a
// POST that h2 had already received cannot be retried, so at most one
// per client fails. Sessions live in Redis and survive changing hosts;
// every POST answered is stored once on the MariaDB host. Then lighttpd,
// with the three hosts in fastcgi.server, loses nothing while h3 is
// drained.
func TestCluster(t *testing.T) {
	c := newCluster(t)
	for _, h := range clusterHosts {
		c.start(h)
	}
	byAddr := map[string]string{}
	for h, a := range c.addrs {
		byAddr[a+":"+clusterPort] = h
	}

	// --allowed-clients: a connection from the Redis host is closed at once.
	out, err := c.in("redis", "timeout", "5", "bash", "-c",
		"exec 3<>/dev/tcp/"+c.addrs["h3"]+"/"+clusterPort+"; cat <&3").CombinedOutput()
	if err != nil {
		t.Errorf("a client outside --allowed-clients was not closed at once: %v %q", err, out)
	}

	hc := c.startNginx()
	resp, err := hc.Get("http://cluster/ping")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "pong") {
		t.Fatalf("/ping through nginx: %d %q", resp.StatusCode, b)
	}

	l := startClusterLoad(hc, byAddr)
	defer l.end()
	l.waitAnswered(t, 300)

	// Drain h1 and restart it with new code.
	l.phase.Store(phaseDrain)
	drainStart := time.Now()
	if err := syscall.Kill(c.hosts["h1"].pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.hosts["h1"].wait(t, 30*time.Second); code != 0 {
		t.Errorf("h1's magnetd exited with %d after SIGTERM", code)
	}
	drained := time.Since(drainStart)
	c.writeCode("h1", "v2")
	c.start("h1")
	waitFor(t, 30*time.Second, "h1 serving the new code", func() error {
		if !l.saw("h1", "v2") {
			return fmt.Errorf("no v2 answer from h1 yet")
		}
		return nil
	})
	l.waitAnswered(t, 200)

	// Kill h2 outright.
	l.phase.Store(phaseKill)
	for _, pid := range c.lab.Pids("h2") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	l.waitAnswered(t, 300)
	l.end()

	warm, warmFailed, errs0 := l.count(phaseWarm, "")
	drainOK, drainFailed, errs1 := l.count(phaseDrain, "")
	killPosts, killPostFailed, errs2 := l.count(phaseKill, "POST")
	killGets, killGetFailed, errs3 := l.count(phaseKill, "GET")
	t.Logf("nginx: before: %d answered, %d failed; h1 drained in %v (answering %d requests on the connections nginx held) and restarted with new code: %d answered, %d failed; "+
		"h2 killed: POST %d answered, %d failed, GET %d answered, %d failed",
		warm, warmFailed, drained.Round(time.Millisecond), l.answeredBy("h1", "v1", phaseDrain), drainOK, drainFailed,
		killPosts, killPostFailed, killGets, killGetFailed)
	// The drain stops new handshakes, takes every queued connection, then
	// shuts the listening socket down (worker/refuse.go): it loses none.
	if warmFailed > 0 || drainFailed > 0 {
		t.Errorf("requests failed before the kill: %v %v", errs0, errs1)
	}
	if killGetFailed > 0 {
		t.Errorf("GETs failed after the kill (nginx retries them): %v", errs3)
	}
	if killPostFailed > clusterClient {
		t.Errorf("%d POSTs failed after the kill, more than the %d that can be in flight on h2: %v", killPostFailed, clusterClient, errs2)
	}
	for i, hs := range l.hosts {
		if len(hs) < 2 {
			t.Errorf("client %d's session only visited %v", i, hs)
		}
	}

	// lighttpd: h2 back, h3 drained under load.
	c.writeCode("h2", "v2")
	c.start("h2")
	lc := c.startLighttpd()
	ll := startClusterLoad(lc, byAddr)
	defer ll.end()
	ll.waitAnswered(t, 200)
	ll.phase.Store(phaseDrain)
	if err := syscall.Kill(c.hosts["h3"].pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.hosts["h3"].wait(t, 30*time.Second); code != 0 {
		t.Errorf("h3's magnetd exited with %d after SIGTERM", code)
	}
	ll.waitAnswered(t, 200)
	ll.end()
	ok, failed, errs := ll.count(-1, "")
	t.Logf("lighttpd: %d answered, %d failed while h3 was drained", ok, failed)
	if failed > 0 {
		t.Errorf("requests failed through lighttpd: %v", errs)
	}
	c.checkPosts(l, ll)
}

// checkPosts compares the database host's posts with the POSTs of the
// loads: each one answered is stored exactly once (no POST was lost
// after its answer, and none was run twice by a retry); one that failed
// (the kill) is stored at most once.
func (c *cluster) checkPosts(loads ...*load) {
	c.t.Helper()
	out, err := c.db.Query("SELECT body, COUNT(*) FROM magnet.posts GROUP BY body")
	if err != nil {
		c.t.Fatal(err)
	}
	stored := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if body, n, ok := strings.Cut(line, "\t"); ok {
			k, _ := strconv.Atoi(n)
			stored[body] = k
		}
	}
	answered, missing, twice := 0, 0, 0
	for _, l := range loads {
		l.mu.Lock()
		for _, r := range l.res {
			if r.method != "POST" {
				continue
			}
			n := stored[r.body]
			switch {
			case n > 1:
				twice++
			case r.err == nil && n == 0:
				missing++
			}
			if r.err == nil {
				answered++
			}
		}
		l.mu.Unlock()
	}
	c.t.Logf("MariaDB host: %d rows for %d POSTs answered", len(stored), answered)
	if missing > 0 || twice > 0 {
		c.t.Errorf("posts on the database host: %d answered POSTs missing, %d stored more than once", missing, twice)
	}
}
