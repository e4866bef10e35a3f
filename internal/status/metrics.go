package status

import (
	"bufio"
	"strconv"
	"strings"
	"time"
)

// metrics writes the page as Prometheus text exposition (0.0.4) or, when
// om is set, as OpenMetrics 1.0 text. The names follow PHP-FPM's
// "phpfpm_" metrics under a "magnet_" prefix; counters carry the "_total"
// suffix both formats expect, and every sample is labelled with the pool.
func (pg *page) metrics(w *bufio.Writer, full bool, om bool) {
	h := pg.h
	pool := `pool="` + escape(h.Pool) + `"`
	m := &metricWriter{w: w, om: om}

	m.one("magnet_up", "gauge", "Whether the pool answered (always 1).", pool, 1)
	m.one("magnet_start_time_seconds", "gauge", "When the pool started, seconds since the epoch.", pool, h.Start.Unix())
	m.one("magnet_start_since", "gauge", "The number of seconds since the pool started.", pool, pg.startSince())
	m.one("magnet_accepted_connections", "counter", "The number of requests accepted by the pool (PHP-FPM's accepted conn).", pool, pg.accepted)
	m.one("magnet_fastcgi_connections", "counter", "The number of FastCGI connections the workers accepted.", pool, pg.conns)
	m.one("magnet_listen_queue", "gauge", "The number of connections waiting in the listen queue.", pool, h.ListenQueue)
	m.one("magnet_max_listen_queue", "gauge", "The most connections seen waiting in the listen queue since the pool started.", pool, h.MaxListenQueue)
	m.one("magnet_listen_queue_length", "gauge", "The size of the listen queue.", pool, h.ListenQueueLen)
	m.one("magnet_idle_processes", "gauge", "The number of idle processes.", pool, pg.idle)
	m.one("magnet_active_processes", "gauge", "The number of active processes.", pool, pg.active)
	m.one("magnet_total_processes", "gauge", "The number of idle and active processes.", pool, pg.idle+pg.active)
	m.one("magnet_max_active_processes", "gauge", "The most active processes seen since the pool started.", pool, h.MaxActive)
	m.one("magnet_max_children_reached", "counter", "The number of times every process was found busy.", pool, h.MaxChildrenReached)
	m.one("magnet_slow_requests", "counter", "The number of requests written to the slow log.", pool, pg.slow)
	m.one("magnet_watchdog_kills", "counter", "The number of workers killed for running a request past the request terminate timeout.", pool, h.WatchdogKills)
	m.one("magnet_max_rss_recycles", "counter", "The number of workers that exited because their RSS passed the limit.", pool, h.RSSRecycles)
	m.one("magnet_idle_timeouts", "counter", "The number of keep-alive connections closed for idling past the idle timeout.", pool, pg.cc.IdleClosed)
	m.one("magnet_read_timeouts", "counter", "The number of connections dropped because a request stopped arriving.", pool, pg.cc.ReadTimeouts)
	m.one("magnet_send_timeouts", "counter", "The number of clients dropped for not taking a response.", pool, pg.cc.SendTimeouts)
	m.one("magnet_refused_requests", "counter", "The number of requests over the protocol limits, answered 431.", pool, pg.cc.Refused)
	m.one("magnet_accept_pauses", "counter", "The number of times a worker stopped accepting, at its connection cap or out of descriptors.", pool, pg.cc.AcceptPaused)
	m.one("magnet_stat_checked_scripts", "gauge", "The number of cached scripts the workers check for changes by stat rather than inotify.", pool, pg.cc.StatChecked)

	if full {
		type proc struct {
			labels string
			i      int
		}
		procs := make([]proc, len(pg.procs))
		for i, s := range pg.procs {
			procs[i] = proc{pool + `,pid="` + strconv.Itoa(s.PID) + `"`, i}
		}
		each := func(name, typ, help string, value func(i int) any) {
			m.family(name, typ, help)
			for _, p := range procs {
				m.sample(name, typ, p.labels, value(p.i))
			}
		}
		m.family("magnet_process_state", "gauge", "The state of the process (Idle, Running, Starting, Finishing).")
		for _, p := range procs {
			m.sample("magnet_process_state", "gauge", p.labels+`,state="`+pg.procs[p.i].State.String()+`"`, 1)
		}
		each("magnet_process_start_time_seconds", "gauge", "When the process started, seconds since the epoch.",
			func(i int) any { return pg.procs[i].Started.Unix() })
		each("magnet_process_requests", "counter", "The number of requests the process has served.",
			func(i int) any { return pg.procs[i].Requests })
		each("magnet_process_request_duration_seconds", "gauge", "The duration of the current request, or of the last one when idle.",
			func(i int) any { return pg.procs[i].LastDuration.Seconds() })
		each("magnet_process_last_request_cpu", "gauge", "The CPU the last request used, in percent of its duration (0: not measured).",
			func(i int) any { return lastCPU(pg.procs[i]) })
		each("magnet_process_last_request_memory_bytes", "gauge", "The memory the last request used.",
			func(i int) any { return lastMemory(pg.procs[i]) })
	}
	if om {
		w.WriteString("# EOF\n")
	}
}

type metricWriter struct {
	w  *bufio.Writer
	om bool
}

// one writes a family with a single sample.
func (m *metricWriter) one(name, typ, help, labels string, v any) {
	m.family(name, typ, help)
	m.sample(name, typ, labels, v)
}

// family writes the HELP and TYPE lines. OpenMetrics names a counter
// family without the "_total" of its samples; Prometheus 0.0.4 names it
// as its samples.
func (m *metricWriter) family(name, typ, help string) {
	if typ == "counter" && !m.om {
		name += "_total"
	}
	m.w.WriteString("# HELP " + name + " " + help + "\n")
	m.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

func (m *metricWriter) sample(name, typ, labels string, v any) {
	if typ == "counter" {
		name += "_total"
	}
	m.w.WriteString(name + "{" + labels + "} " + number(v) + "\n")
}

func number(v any) string {
	switch v := v.(type) {
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case time.Duration:
		return strconv.FormatFloat(v.Seconds(), 'g', -1, 64)
	}
	panic("status: not a number")
}

// escape escapes a label value for both exposition formats.
var escape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace
