package worker

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// Containment: a script cannot take its worker down. Each attack is
// answered with a 500, and the next request on the same worker is fine.

const containLimit = 64 << 20

// want123 asks for 123.lua and wants its answer.
func want123(t *testing.T, c *protocol.Client, after string) {
	t.Helper()
	root, _ := filepath.Abs("../examples")
	if status, body, _ := get(t, c, filepath.Join(root, "123.lua"), true); status != 200 || body != "123" {
		t.Fatalf("123.lua after %s: %d %q", after, status, body)
	}
}

func TestContainAttacks(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{MemoryLimit: containLimit})
	c := dial(t, sock)
	victim := writeScript(t, dir, "p.lua", `print("Content-Type: text/plain\r\n\r\nok")`)
	get(t, c, victim, true)
	attacks := map[string]string{
		"cache metatable": fmt.Sprintf(`
			local boom = function() error("boom") end
			setmetatable(magnet.cache[%q], {__index = boom, __newindex = boom})
			magnet.cache[%q].hits = nil
			error("done")`, victim, victim),
		"globals metatable":  `setmetatable(_G, {__index = function() error("boom") end, __newindex = function() error("boom") end}) return undefined.x`,
		"magnet.header = 5":  `magnet.header = 5`,
		"magnet.request = x": `magnet.request = "x"`,
		"magnet.cache = nil": `magnet.cache = nil`,
		"finalizer in Go":    `for r = 1, 20 do for i = 1, 200 do getmetatable(newproxy(true)).__gc = function() error("gc") end end pcall(magnet.fs.readdir, "/usr/bin") end error("done")`,
		"string.rep bomb":    `local s = string.rep("ab", 2^30) print(#s)`,
		"doubling string":    `local s = "x" while true do s = s .. s end`,
		"deep recursion":     `local function f() return 1 + f() end f()`,
	}
	for name, src := range attacks {
		script := writeScript(t, dir, strings.ReplaceAll(name, " ", "_")+".lua", src)
		if status, _, _ := get(t, c, script, true); status != 500 {
			t.Errorf("%s: status %d, want 500", name, status)
		}
		want123(t, c, name)
		if status, body, _ := get(t, c, victim, true); status != 200 || body != "ok" {
			t.Errorf("victim after %s: %d %q", name, status, body)
		}
	}
}

// TestContainUnsound: a state that keeps more than its limit after a full
// collection makes the worker finish the response and exit.
func TestContainUnsound(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "w.sock")
	fd, err := Listen(sock, 16)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{ListenFD: fd, MemoryLimit: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	hoard := writeScript(t, dir, "hoard.lua", `hoard = {} for i = 1, 1e9 do hoard[i] = string.rep("x", 1000) .. i end`)
	c := dial(t, sock)
	if status, _, _ := get(t, c, hoard, false); status != 500 {
		t.Fatalf("hoard: status %d, want 500", status)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		srv.Shutdown()
		t.Fatal("the worker did not exit with an unsound state")
	}
}

// TestContainRandom runs 10,000 requests of scripts that mutate magnet.*,
// _G, package.loaded and metatables and raise in odd places, then checks
// that the seed scripts still answer correctly. Mutations that break a
// seed by design (removing print, a cache entry's fields) are left out:
// the point is that the worker and magnet's own fields survive.
func TestContainRandom(t *testing.T) {
	seed := int64(8)
	if s := os.Getenv("MAGNET_CONTAIN_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (MAGNET_CONTAIN_SEED=%d reproduces it)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	ops := []string{
		`setmetatable(magnet.cache, {__index = boom, __newindex = boom, __len = boom})`,
		`for k, v in pairs(magnet.cache) do setmetatable(v, {__index = boom, __newindex = boom}) end`,
		`magnet.header = odd()`,
		`magnet.status = odd()`,
		`magnet.request = odd()`,
		`magnet.cache = odd()`,
		`magnet[name()] = odd()`,
		`setmetatable(magnet, {})`,
		`magnet.header = setmetatable({}, {__index = boom, __newindex = boom}) magnet.header.X = odd()`,
		`magnet.header[name()] = odd()`,
		`setmetatable(_G, {__index = boom, __newindex = boom})`,
		`setmetatable(_G, nil)`,
		`_G[name()] = odd()`,
		`rawset(_G, name(), odd())`,
		`package.loaded[name()] = odd()`,
		`package.loaded.magnet = odd()`,
		`setmetatable(package.loaded, {__index = boom, __newindex = boom})`,
		`for i = 1, 50 do getmetatable(newproxy(true)).__gc = boom end`,
		`pcall(magnet.fs.readdir, "/")`,
		`pcall(magnet.fs.stat, odd())`,
		`error(odd())`,
		`error(setmetatable({}, {__tostring = boom}))`,
		`local function f() return 1 + f() end f()`,
		`coroutine.wrap(function() magnet.header = 5 end)()`,
		`setfenv(0, {})`,
		`local s = "x" for i = 1, 40 do s = s .. s end`,
		`print(odd())`,
		`io.write(odd())`,
		`local r = magnet.request setmetatable(r, {__index = boom}) local _ = r.nothing`,
		`collectgarbage()`,
	}
	prelude := `local function boom() error("boom") end
local odds = {5, "x", true, {}, function() end, coroutine.create(function() end), newproxy(), 0/0, -1, 1e300}
local function odd() return odds[math.random(#odds)] end
local n = 0
local function name() n = n + 1 return "k" .. (n % 7) end
`
	dir := t.TempDir()
	var pool []string
	for i := 0; i < 60; i++ {
		var b strings.Builder
		b.WriteString(prelude)
		for k := 1 + rng.Intn(4); k > 0; k-- {
			op := ops[rng.Intn(len(ops))]
			if rng.Intn(2) == 0 {
				fmt.Fprintf(&b, "pcall(function() %s end)\n", op)
			} else {
				fmt.Fprintf(&b, "%s\n", op)
			}
		}
		b.WriteString(`print("Content-Type: text/plain\r\n\r\nsurvived")` + "\n")
		pool = append(pool, writeScript(t, dir, fmt.Sprintf("r%d.lua", i), b.String()))
	}
	sock, _ := startServer(t, Config{MemoryLimit: 16 << 20, Timeout: 5 * time.Second})
	c := dial(t, sock)
	deadline := time.Now().Add(2 * time.Minute)
	n := 10000
	for i := 0; i < n; i++ {
		if time.Now().After(deadline) {
			t.Logf("stopped after %d requests (time bound)", i)
			break
		}
		status, body, _ := get(t, c, pool[rng.Intn(len(pool))], true)
		// a script that set magnet.header has its printed headers in the body
		if status != 500 && (status != 200 || !strings.HasSuffix(body, "survived")) {
			t.Fatalf("seed %d, request %d: %d %q", seed, i, status, body)
		}
	}
	want123(t, c, "the random scripts")
	root, _ := filepath.Abs("../examples")
	status, body, _ := get(t, c, filepath.Join(root, "cache-admin.lua"), true)
	if status != 200 || !strings.Contains(body, "123.lua") || !strings.Contains(body, "r0.lua") && !strings.Contains(body, ".lua</td>") {
		t.Fatalf("seed %d: cache-admin.lua: %d %q", seed, status, body)
	}
}

// TestContainRSS runs the memory attacks in a worker process of its own
// and checks its peak resident memory: the limit, plus the Go runtime and
// the C library's slack.
func TestContainRSS(t *testing.T) {
	if os.Getenv("MAGNET_CONTAIN_WORKER") != "" {
		containWorker(t)
		return
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "w.sock")
	cmd := testutil.SelfCommand("-test.run=^TestContainRSS$")
	cmd.Env = append(os.Environ(), "MAGNET_CONTAIN_WORKER="+sock)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	ready := bufio.NewReader(stdout)
	if line, err := ready.ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("helper worker: %q %v", line, err)
	}
	c := dial(t, sock)
	base := hwm(t, cmd.Process.Pid)
	for name, src := range map[string]string{
		"string.rep": `local s = string.rep("ab", 2^30) print(#s)`,
		"doubling":   `local s = "x" while true do s = s .. s end`,
	} {
		script := writeScript(t, dir, name+".lua", src)
		start := time.Now()
		status, _, _ := get(t, c, script, true)
		peak := hwm(t, cmd.Process.Pid)
		t.Logf("%s: %d in %v, peak RSS %d MiB (limit %d MiB, %d MiB before)", name, status, time.Since(start).Round(time.Millisecond), peak>>20, containLimit>>20, base>>20)
		if status != 500 {
			t.Errorf("%s: status %d, want 500", name, status)
		}
		if peak > base+2*containLimit {
			t.Errorf("%s: peak RSS %d MiB, over the limit of %d MiB plus its margin", name, peak>>20, containLimit>>20)
		}
		want123(t, c, name)
	}
}

func containWorker(t *testing.T) {
	sock := os.Getenv("MAGNET_CONTAIN_WORKER")
	fd, err := Listen(sock, 16)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{ListenFD: fd, MemoryLimit: containLimit})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	srv.Serve() // until the parent kills this process
}

// hwm is a process's peak resident memory (VmHWM) in bytes.
func hwm(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
