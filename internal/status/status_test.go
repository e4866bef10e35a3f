package status

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/scoreboard"
)

// listen makes a listening socket with a known backlog, as the master does.
func listen(t *testing.T, sa unix.Sockaddr, family, backlog int) *os.File {
	t.Helper()
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	t.Cleanup(func() { f.Close() })
	return f
}

// waitQueue polls the listen queue until it holds want connections.
func waitQueue(t *testing.T, f *os.File, want, size uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, s, err := ListenQueue(f)
		if err != nil {
			t.Fatal(err)
		}
		if q == want && s == size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen queue %d of %d, want %d of %d", q, s, want, size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialN(t *testing.T, network, addr string, n int) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

func TestListenQueueTCP(t *testing.T) {
	f := listen(t, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, unix.AF_INET, 17)
	sa, err := unix.Getsockname(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", itoa(sa.(*unix.SockaddrInet4).Port))
	waitQueue(t, f, 0, 17)
	dialN(t, "tcp", addr, 3)
	waitQueue(t, f, 3, 17)
}

func TestListenQueueTCP6(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Skip("no IPv6:", err)
	}
	unix.Close(fd)
	f := listen(t, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}, unix.AF_INET6, 9)
	sa, err := unix.Getsockname(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	dialN(t, "tcp6", net.JoinHostPort("::1", itoa(sa.(*unix.SockaddrInet6).Port)), 2)
	waitQueue(t, f, 2, 9)
}

func TestListenQueueUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	f := listen(t, &unix.SockaddrUnix{Name: path}, unix.AF_UNIX, 23)
	waitQueue(t, f, 0, 23)
	dialN(t, "unix", path, 4)
	waitQueue(t, f, 4, 23)
}

func TestListenQueueNotListener(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := ListenQueue(f); err == nil {
		t.Fatal("a plain file has a listen queue")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// testPool makes a board with a busy worker, an idle one with one request
// served, a starting one and a free slot, all in this process.
func testPool(t *testing.T) (*Pool, []*scoreboard.Slot) {
	t.Helper()
	b, err := scoreboard.Create(4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p := &Pool{Name: "www", PM: "static", Board: b, Start: time.Now().Add(-90 * time.Second)}
	fd := int(b.File().Fd())
	var slots []*scoreboard.Slot
	for i, pid := range []int{101, 102} {
		b.Reset(i, pid)
		s, err := scoreboard.Attach(fd, i)
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	// Attach records the caller's pid; the test then reads slots whose
	// master pid differs from it as Starting, so the master records ours.
	b.Reset(0, os.Getpid())
	b.Reset(1, os.Getpid())
	slots[0].Accepted()
	slots[0].Begin([]byte("GET"), []byte("/busy.lua?a=\"1\""), []byte("/srv/busy.lua"))
	slots[1].Accepted()
	slots[1].Begin([]byte("POST"), []byte("/done.lua"), []byte("/srv/done.lua"))
	slots[1].Details(5, []byte("bob"))
	slots[1].End(2048)
	b.Reset(2, 103)
	if err := p.Update(); err != nil {
		t.Fatal(err)
	}
	return p, slots
}

func render(t *testing.T, p *Pool, format string, full bool) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, p, format, full); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestText(t *testing.T) {
	p, _ := testPool(t)
	out := render(t, p, Text, false)
	for _, want := range []string{
		"pool:                 www\n",
		"process manager:      static\n",
		"start since:          9",
		"accepted conn:        2\n",
		"listen queue:         0\n",
		"idle processes:       2\n",
		"active processes:     1\n",
		"total processes:      3\n",
		"max active processes: 2\n",
		"max children reached: 0\n",
		"slow requests:        0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text page lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^start time:           \d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$`).MatchString(out) {
		t.Errorf("start time format:\n%s", out)
	}
	if strings.Contains(out, "pid:") {
		t.Errorf("processes without full:\n%s", out)
	}

	out = render(t, p, Text, true)
	if n := strings.Count(out, "************************\n"); n != 3 {
		t.Errorf("%d processes, want 3:\n%s", n, out)
	}
	for _, want := range []string{
		"state:                Running\n",
		"request URI:          /busy.lua?a=\"1\"\n",
		"state:                Idle\n",
		"request method:       POST\n",
		"content length:       5\n",
		"user:                 bob\n",
		"script:               /srv/done.lua\n",
		"last request cpu:     0.00\n",
		"last request memory:  2048\n",
		"pid:                  103\nstate:                Starting\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("full text page lacks %q:\n%s", want, out)
		}
	}
}

func TestJSON(t *testing.T) {
	p, _ := testPool(t)
	out := render(t, p, JSON, true)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if v["pool"] != "www" || v["accepted conn"] != 2.0 || v["total processes"] != 3.0 || v["active processes"] != 1.0 {
		t.Errorf("json page %s", out)
	}
	if st, ok := v["start time"].(float64); !ok || int64(st) != p.Start.Unix() {
		t.Errorf("start time %v, want %d", v["start time"], p.Start.Unix())
	}
	procs, _ := v["processes"].([]any)
	if len(procs) != 3 {
		t.Fatalf("processes %v", v["processes"])
	}
	busy := procs[0].(map[string]any)
	if busy["state"] != "Running" || busy["request uri"] != `/busy.lua?a="1"` || busy["last request memory"] != 0.0 {
		t.Errorf("busy process %v", busy)
	}
	// Keys in PHP-FPM's order.
	if i, j := strings.Index(out, `"pool"`), strings.Index(out, `"slow requests"`); i < 0 || j < i {
		t.Errorf("key order: %s", out)
	}
	if out := render(t, p, JSON, false); strings.Contains(out, `"processes":`) {
		t.Errorf("processes without full: %s", out)
	}
}

var (
	sampleLine = regexp.MustCompile(`^[a-z_]+\{pool="www"(,pid="\d+")?(,state="[A-Za-z]+")?\} -?[0-9.e+-]+$`)
	metaLine   = regexp.MustCompile(`^# (HELP [a-z_]+ .+|TYPE [a-z_]+ (gauge|counter))$`)
)

// checkExposition checks the lines of a Prometheus or OpenMetrics page and
// returns its samples by name and labels.
func checkExposition(t *testing.T, out string, om bool) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if om {
		if lines[len(lines)-1] != "# EOF" {
			t.Errorf("no # EOF at the end")
		}
		lines = lines[:len(lines)-1]
	}
	samples := map[string]string{}
	typ := map[string]string{}
	for _, l := range lines {
		switch {
		case metaLine.MatchString(l):
			f := strings.Fields(l)
			if f[1] == "TYPE" {
				typ[f[2]] = f[3]
			}
		case sampleLine.MatchString(l):
			name, rest, _ := strings.Cut(l, "{")
			labels, value, _ := strings.Cut(rest, "} ")
			family := name
			if om {
				family = strings.TrimSuffix(name, "_total")
			}
			if typ[family] == "" {
				t.Errorf("sample %s without TYPE for %s", l, family)
			}
			if (typ[family] == "counter") != strings.HasSuffix(name, "_total") {
				t.Errorf("counter naming: %s (%s)", l, typ[family])
			}
			samples[name+"{"+labels+"}"] = value
		default:
			t.Errorf("bad line %q", l)
		}
	}
	return samples
}

func TestMetrics(t *testing.T) {
	p, _ := testPool(t)
	for _, om := range []bool{false, true} {
		format := Prometheus
		if om {
			format = OpenMetrics
		}
		s := checkExposition(t, render(t, p, format, true), om)
		for k, want := range map[string]string{
			`magnet_up{pool="www"}`:                                          "1",
			`magnet_accepted_connections_total{pool="www"}`:                  "2",
			`magnet_total_processes{pool="www"}`:                             "3",
			`magnet_idle_processes{pool="www"}`:                              "2",
			`magnet_active_processes{pool="www"}`:                            "1",
			`magnet_slow_requests_total{pool="www"}`:                         "0",
			`magnet_max_children_reached_total{pool="www"}`:                  "0",
			`magnet_process_requests_total{pool="www",pid="103"}`:            "0",
			`magnet_process_state{pool="www",pid="103",state="Starting"}`:    "1",
			`magnet_process_last_request_memory_bytes{pool="www",pid="103"}`: "0",
		} {
			if s[k] != want {
				t.Errorf("%s: %s = %q, want %q", format, k, s[k], want)
			}
		}
	}
}

func TestUpdate(t *testing.T) {
	p, slots := testPool(t)
	b := p.Board
	path := filepath.Join(t.TempDir(), "s.sock")
	p.Listener = listen(t, &unix.SockaddrUnix{Name: path}, unix.AF_UNIX, 31)
	p.SlowThreshold = time.Hour
	dialN(t, "unix", path, 2)
	if err := p.Update(); err != nil {
		t.Fatal(err)
	}
	h := b.Header()
	if h.ListenQueue != 2 || h.MaxListenQueue != 2 || h.ListenQueueLen != 31 || h.SlowThreshold != time.Hour {
		t.Errorf("header %+v", h)
	}
	// Every worker busy: counted once per stretch.
	slots[1].Begin([]byte("GET"), []byte("/x"), []byte("/srv/x"))
	b.Release(2)
	for range 3 {
		if err := p.Update(); err != nil {
			t.Fatal(err)
		}
	}
	if h := b.Header(); h.MaxChildrenReached != 1 || h.MaxActive != 2 {
		t.Errorf("saturated: %+v", h)
	}
	slots[1].End(0)
	p.Update()
	slots[1].Begin([]byte("GET"), []byte("/x"), []byte("/srv/x"))
	p.Update()
	if h := b.Header(); h.MaxChildrenReached != 2 {
		t.Errorf("second saturation: %+v", h)
	}
}

func TestParseQuery(t *testing.T) {
	for q, want := range map[string]struct {
		f    string
		full bool
	}{
		"":                {Text, false},
		"full":            {Text, true},
		"json":            {JSON, false},
		"full&json":       {JSON, true},
		"openmetrics":     {OpenMetrics, false},
		"prometheus&full": {Prometheus, true},
		"html":            {HTML, false},
		"xml&full":        {XML, true},
	} {
		if f, full := ParseQuery(q); f != want.f || full != want.full {
			t.Errorf("%q: %s %v", q, f, full)
		}
	}
}

// Every worker busy but nobody waiting is not "max children reached".
func TestUpdateBusyNoQueue(t *testing.T) {
	p, slots := testPool(t)
	path := filepath.Join(t.TempDir(), "s.sock")
	p.Listener = listen(t, &unix.SockaddrUnix{Name: path}, unix.AF_UNIX, 8)
	slots[1].Begin([]byte("GET"), []byte("/x"), []byte("/srv/x"))
	p.Board.Release(2)
	if err := p.Update(); err != nil {
		t.Fatal(err)
	}
	if h := p.Board.Header(); h.MaxChildrenReached != 0 || h.ListenQueueLen != 8 {
		t.Errorf("header %+v", h)
	}
}

func TestXMLAndHTML(t *testing.T) {
	p, _ := testPool(t)
	out := render(t, p, XML, true)
	if !strings.HasPrefix(out, `<?xml version="1.0" ?>`) {
		t.Errorf("xml prolog: %s", out)
	}
	var v xmlStatus
	if err := xml.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if v.Pool != "www" || v.AcceptedConn != 2 || v.TotalProcesses != 3 || v.Processes == nil || len(*v.Processes) != 3 {
		t.Errorf("xml %+v", v)
	}
	if pr := (*v.Processes)[0]; pr.State != "Running" || pr.RequestURI != `/busy.lua?a="1"` || pr.LastRequestCPU != "0.00" {
		t.Errorf("xml process %+v", pr)
	}
	if out := render(t, p, XML, false); strings.Contains(out, "<processes>") {
		t.Errorf("processes without full: %s", out)
	}

	out = render(t, p, HTML, true)
	for _, want := range []string{"<tr><th>accepted conn</th><td>2</td></tr>", "<td>Running</td>", "/busy.lua?a=&#34;1&#34;", "<td>bob</td>"} {
		if !strings.Contains(out, want) {
			t.Errorf("html lacks %q:\n%s", want, out)
		}
	}
	if out := render(t, p, HTML, false); strings.Contains(out, "<td>Running</td>") {
		t.Errorf("processes without full: %s", out)
	}
}

// TestContainmentFigures: the watchdog kills, the max-rss recycles and each
// worker's Lua heap (last request memory) are on the page in every format.
func TestContainmentFigures(t *testing.T) {
	p, slots := testPool(t)
	p.Board.AddWatchdogKill()
	p.Board.AddWatchdogKill()
	slots[1].RecycledForRSS()
	for format, wants := range map[string][]string{
		Text:        {"watchdog kills:       2\n", "max rss recycles:     1\n", "last request memory:  2048\n"},
		JSON:        {`"watchdog kills":2`, `"max rss recycles":1`, `"last request memory":2048`},
		XML:         {"<watchdog-kills>2</watchdog-kills>", "<max-rss-recycles>1</max-rss-recycles>", "<last-request-memory>2048</last-request-memory>"},
		HTML:        {"<th>watchdog kills</th><td>2</td>", "<th>max rss recycles</th><td>1</td>", "<td>2048</td>"},
		Prometheus:  {`magnet_watchdog_kills_total{pool="www"} 2`, `magnet_max_rss_recycles_total{pool="www"} 1`, `magnet_process_last_request_memory_bytes{pool="www",pid="` + strconv.Itoa(os.Getpid()) + `"} 2048`},
		OpenMetrics: {`magnet_watchdog_kills_total{pool="www"} 2`, `magnet_max_rss_recycles_total{pool="www"} 1`},
	} {
		out := render(t, p, format, true)
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("%s page lacks %q:\n%s", format, want, out)
			}
		}
	}
}

// TestConnFigures: the slow log count, the workers' connection counts
// (summed over the pool) and the stat-checked scripts are on the page in
// every format.
func TestConnFigures(t *testing.T) {
	p, slots := testPool(t)
	slots[0].SlowLogged()
	slots[1].SlowLogged()
	slots[0].IdleClosed()
	slots[1].IdleClosed()
	slots[1].IdleClosed()
	slots[0].ReadTimedOut()
	slots[1].SendTimedOut()
	slots[1].SendTimedOut()
	slots[0].Refused()
	slots[0].Refused()
	slots[0].Refused()
	slots[0].Refused()
	slots[1].AcceptPaused()
	slots[0].StatChecked(2)
	slots[1].StatChecked(3)
	for format, wants := range map[string][]string{
		Text: {"slow requests:        2\n", "idle timeouts:        3\n", "read timeouts:        1\n", "send timeouts:        2\n",
			"refused requests:     4\n", "accept pauses:        1\n", "stat checked scripts: 5\n"},
		JSON: {`"slow requests":2`, `"idle timeouts":3`, `"read timeouts":1`, `"send timeouts":2`, `"refused requests":4`, `"accept pauses":1`, `"stat checked scripts":5`},
		XML: {"<slow-requests>2</slow-requests>", "<idle-timeouts>3</idle-timeouts>", "<read-timeouts>1</read-timeouts>", "<send-timeouts>2</send-timeouts>",
			"<refused-requests>4</refused-requests>", "<accept-pauses>1</accept-pauses>", "<stat-checked-scripts>5</stat-checked-scripts>"},
		HTML: {"<th>slow requests</th><td>2</td>", "<th>idle timeouts</th><td>3</td>", "<th>read timeouts</th><td>1</td>", "<th>send timeouts</th><td>2</td>",
			"<th>refused requests</th><td>4</td>", "<th>accept pauses</th><td>1</td>", "<th>stat checked scripts</th><td>5</td>"},
		Prometheus: {`magnet_slow_requests_total{pool="www"} 2`, `magnet_idle_timeouts_total{pool="www"} 3`, `magnet_read_timeouts_total{pool="www"} 1`,
			`magnet_send_timeouts_total{pool="www"} 2`, `magnet_refused_requests_total{pool="www"} 4`, `magnet_accept_pauses_total{pool="www"} 1`,
			`magnet_stat_checked_scripts{pool="www"} 5`},
		OpenMetrics: {`magnet_idle_timeouts_total{pool="www"} 3`, `magnet_refused_requests_total{pool="www"} 4`, "# TYPE magnet_stat_checked_scripts gauge"},
	} {
		out := render(t, p, format, true)
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("%s page lacks %q:\n%s", format, want, out)
			}
		}
	}
}
