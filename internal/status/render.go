package status

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/magnet-fcgi/magnet/internal/scoreboard"
)

// The formats of the status page.
const (
	Text        = "text"        // PHP-FPM's plain text, the default
	JSON        = "json"        // PHP-FPM's JSON
	OpenMetrics = "openmetrics" // OpenMetrics 1.0 text
	Prometheus  = "prometheus"  // Prometheus text exposition 0.0.4
	XML         = "xml"         // PHP-FPM's XML
	HTML        = "html"        // PHP-FPM's HTML tables
)

// ParseQuery picks the format and detail of the page from a query string
// as PHP-FPM does: the presence of a key "json", "openmetrics" or
// "prometheus", "xml" or "html" selects the format (text otherwise),
// "full" adds one entry per process.
func ParseQuery(rawQuery string) (format string, full bool) {
	q, _ := url.ParseQuery(rawQuery)
	_, full = q["full"]
	for _, f := range []string{HTML, XML, JSON, OpenMetrics, Prometheus} {
		if _, ok := q[f]; ok {
			return f, full
		}
	}
	return Text, full
}

// ContentType returns the media type of a format.
func ContentType(format string) string {
	switch format {
	case JSON:
		return "application/json"
	case OpenMetrics:
		return "application/openmetrics-text; version=1.0.0; charset=utf-8"
	case Prometheus:
		return "text/plain; version=0.0.4; charset=utf-8"
	case XML:
		return "text/xml"
	case HTML:
		return "text/html; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

// Render writes the status page of p in format, with one entry per
// process when full. It reads the board as it is; the master refreshes the
// kernel figures with Update.
func Render(w io.Writer, p *Pool, format string, full bool) error {
	if len(p.Shared) > 0 {
		return renderShared(w, p, format, full)
	}
	return RenderBoard(w, p.Board, format, full)
}

// RenderBoard writes the status page from the scoreboard alone, so that a
// worker that maps the board can answer a status request itself.
func RenderBoard(w io.Writer, b *scoreboard.Board, format string, full bool) error {
	pg := collect(b, time.Now())
	bw := bufio.NewWriter(w)
	switch format {
	case JSON:
		pg.json(bw, full)
	case OpenMetrics, Prometheus:
		pg.metrics(bw, full, format == OpenMetrics)
	case XML:
		pg.xml(bw, full)
	case HTML:
		pg.html(bw, full)
	case Text, "":
		pg.text(bw, full)
	default:
		return fmt.Errorf("status: unknown format %q", format)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("status: write: %w", err)
	}
	return nil
}

// page is the content of a status page, read from a board at one moment.
type page struct {
	now      time.Time
	h        scoreboard.Header
	accepted uint64 // requests accepted, finished or not
	conns    uint64 // FastCGI connections accepted
	slow     uint64
	cc       scoreboard.Conns // the workers' connection counts, summed
	idle     int
	active   int
	procs    []scoreboard.Snapshot
}

func collect(b *scoreboard.Board, now time.Time) *page {
	pg := &page{now: now, h: b.Header()}
	// PHP-FPM's "accepted conn" counts the requests the pool accepted
	// (its documentation: "the number of requests accepted by the pool"),
	// whatever the number of FastCGI connections that carried them; the
	// connections are counted apart.
	pg.accepted, pg.conns, pg.slow, pg.cc = pg.h.Requests, pg.h.Accepted, pg.h.Slow, pg.h.Conns
	for i := range b.Len() {
		s := b.Snapshot(i)
		if s.State == scoreboard.Free {
			continue
		}
		pg.accepted += s.Requests
		if s.State == scoreboard.Busy {
			pg.accepted++
		}
		pg.conns += s.Accepted
		pg.slow += s.Slow
		pg.cc.Add(s.Conns)
		if counted(s.State) {
			pg.active++
		} else {
			pg.idle++
		}
		pg.procs = append(pg.procs, s)
	}
	// The header's maximum is refreshed once a second; never show less
	// than what is seen now.
	pg.h.MaxActive = max(pg.h.MaxActive, uint64(pg.active))
	return pg
}

func (pg *page) startSince() int64 {
	return max(int64(pg.now.Sub(pg.h.Start)/time.Second), 0)
}

// Per-process figures in PHP-FPM's units.
func sinceSeconds(now, t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(int64(now.Sub(t)/time.Second), 0)
}

func micros(d time.Duration) int64 { return int64(d / time.Microsecond) }

// lastMemory is the last request's memory, shown only while the process
// waits for the next request, as PHP-FPM does.
func lastMemory(s scoreboard.Snapshot) uint64 {
	if s.State == scoreboard.Busy {
		return 0
	}
	return s.LastMemory
}

// lastCPU is the last request's CPU use in percent of its duration.
// Workers do not measure it yet, so it reads 0.
func lastCPU(s scoreboard.Snapshot) float64 {
	if s.State == scoreboard.Busy || s.LastDuration <= 0 {
		return 0
	}
	return 100 * float64(s.LastCPU) / float64(s.LastDuration)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// textTime is PHP-FPM's strftime format "%d/%b/%Y:%H:%M:%S %z".
const textTime = "02/Jan/2006:15:04:05 -0700"

func (pg *page) text(w *bufio.Writer, full bool) {
	line := func(name string, v any) { fmt.Fprintf(w, "%-22s%v\n", name+":", v) }
	h := pg.h
	line("pool", h.Pool)
	line("process manager", h.PM)
	line("start time", h.Start.Local().Format(textTime))
	line("start since", pg.startSince())
	line("accepted conn", pg.accepted)
	line("listen queue", h.ListenQueue)
	line("max listen queue", h.MaxListenQueue)
	line("listen queue len", h.ListenQueueLen)
	line("idle processes", pg.idle)
	line("active processes", pg.active)
	line("total processes", pg.idle+pg.active)
	line("max active processes", h.MaxActive)
	line("max children reached", h.MaxChildrenReached)
	line("slow requests", pg.slow)
	line("watchdog kills", h.WatchdogKills)
	line("max rss recycles", h.RSSRecycles)
	line("idle timeouts", pg.cc.IdleClosed)
	line("read timeouts", pg.cc.ReadTimeouts)
	line("send timeouts", pg.cc.SendTimeouts)
	line("refused requests", pg.cc.Refused)
	line("accept pauses", pg.cc.AcceptPaused)
	line("stat checked scripts", pg.cc.StatChecked)
	if !full {
		return
	}
	for _, s := range pg.procs {
		w.WriteString("\n************************\n")
		line("pid", s.PID)
		line("state", s.State)
		line("start time", s.Started.Local().Format(textTime))
		line("start since", sinceSeconds(pg.now, s.Started))
		line("requests", s.Requests)
		line("request duration", micros(s.LastDuration))
		line("request method", dash(s.Method))
		line("request URI", dash(s.URI))
		line("content length", s.ContentLength)
		line("user", dash(s.User))
		line("script", dash(s.Script))
		line("last request cpu", strconv.FormatFloat(lastCPU(s), 'f', 2, 64))
		line("last request memory", lastMemory(s))
	}
}

// poolFigures are the pool-level figures under PHP-FPM's JSON keys and
// XML element names, in its order.
type poolFigures struct {
	Pool               string `json:"pool" xml:"pool"`
	ProcessManager     string `json:"process manager" xml:"process-manager"`
	StartTime          int64  `json:"start time" xml:"start-time"`
	StartSince         int64  `json:"start since" xml:"start-since"`
	AcceptedConn       uint64 `json:"accepted conn" xml:"accepted-conn"`
	ListenQueue        uint64 `json:"listen queue" xml:"listen-queue"`
	MaxListenQueue     uint64 `json:"max listen queue" xml:"max-listen-queue"`
	ListenQueueLen     uint64 `json:"listen queue len" xml:"listen-queue-len"`
	IdleProcesses      int    `json:"idle processes" xml:"idle-processes"`
	ActiveProcesses    int    `json:"active processes" xml:"active-processes"`
	TotalProcesses     int    `json:"total processes" xml:"total-processes"`
	MaxActiveProcesses uint64 `json:"max active processes" xml:"max-active-processes"`
	MaxChildrenReached uint64 `json:"max children reached" xml:"max-children-reached"`
	SlowRequests       uint64 `json:"slow requests" xml:"slow-requests"`
	// magnet's own: workers killed by the request terminate timeout, and
	// workers recycled for passing --max-rss.
	WatchdogKills  uint64 `json:"watchdog kills" xml:"watchdog-kills"`
	MaxRSSRecycles uint64 `json:"max rss recycles" xml:"max-rss-recycles"`
	// magnet's own: what the workers did to contain connections (their
	// sums), and how many cached scripts are checked by stat, not inotify.
	IdleTimeouts       uint64 `json:"idle timeouts" xml:"idle-timeouts"`
	ReadTimeouts       uint64 `json:"read timeouts" xml:"read-timeouts"`
	SendTimeouts       uint64 `json:"send timeouts" xml:"send-timeouts"`
	RefusedRequests    uint64 `json:"refused requests" xml:"refused-requests"`
	AcceptPauses       uint64 `json:"accept pauses" xml:"accept-pauses"`
	StatCheckedScripts uint64 `json:"stat checked scripts" xml:"stat-checked-scripts"`
}

// jsonPool and jsonProc carry PHP-FPM's JSON keys, in its order.
type jsonPool struct {
	poolFigures
	Processes *[]jsonProc `json:"processes,omitempty"` // only with full
}

type jsonProc struct {
	PID               int     `json:"pid"`
	State             string  `json:"state"`
	StartTime         int64   `json:"start time"`
	StartSince        int64   `json:"start since"`
	Requests          uint64  `json:"requests"`
	RequestDuration   int64   `json:"request duration"`
	RequestMethod     string  `json:"request method"`
	RequestURI        string  `json:"request uri"`
	ContentLength     int64   `json:"content length"`
	User              string  `json:"user"`
	Script            string  `json:"script"`
	LastRequestCPU    float64 `json:"last request cpu"`
	LastRequestMemory uint64  `json:"last request memory"`
}

// figures returns the pool-level figures.
func (pg *page) figures() poolFigures {
	h := pg.h
	return poolFigures{
		Pool:               h.Pool,
		ProcessManager:     h.PM,
		StartTime:          h.Start.Unix(),
		StartSince:         pg.startSince(),
		AcceptedConn:       pg.accepted,
		ListenQueue:        h.ListenQueue,
		MaxListenQueue:     h.MaxListenQueue,
		ListenQueueLen:     h.ListenQueueLen,
		IdleProcesses:      pg.idle,
		ActiveProcesses:    pg.active,
		TotalProcesses:     pg.idle + pg.active,
		MaxActiveProcesses: h.MaxActive,
		MaxChildrenReached: h.MaxChildrenReached,
		SlowRequests:       pg.slow,
		WatchdogKills:      h.WatchdogKills,
		MaxRSSRecycles:     h.RSSRecycles,
		IdleTimeouts:       pg.cc.IdleClosed,
		ReadTimeouts:       pg.cc.ReadTimeouts,
		SendTimeouts:       pg.cc.SendTimeouts,
		RefusedRequests:    pg.cc.Refused,
		AcceptPauses:       pg.cc.AcceptPaused,
		StatCheckedScripts: pg.cc.StatChecked,
	}
}

// procRows returns the per-process figures in PHP-FPM's units.
func (pg *page) procRows() []jsonProc {
	rows := make([]jsonProc, 0, len(pg.procs))
	for _, s := range pg.procs {
		rows = append(rows, jsonProc{
			PID:               s.PID,
			State:             s.State.String(),
			StartTime:         s.Started.Unix(),
			StartSince:        sinceSeconds(pg.now, s.Started),
			Requests:          s.Requests,
			RequestDuration:   micros(s.LastDuration),
			RequestMethod:     dash(s.Method),
			RequestURI:        dash(s.URI),
			ContentLength:     s.ContentLength,
			User:              dash(s.User),
			Script:            dash(s.Script),
			LastRequestCPU:    float64(int64(lastCPU(s)*100+0.5)) / 100,
			LastRequestMemory: lastMemory(s),
		})
	}
	return rows
}

func (pg *page) json(w *bufio.Writer, full bool) {
	v := jsonPool{poolFigures: pg.figures()}
	if full {
		procs := pg.procRows()
		v.Processes = &procs
	}
	// Encoding a struct of strings and numbers cannot fail; write errors
	// surface at Flush.
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
