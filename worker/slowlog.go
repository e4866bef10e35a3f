package worker

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/magnet-fcgi/magnet/luabind"
)

// The slow log, like PHP-FPM's: a request still running after
// SlowLogTimeout gets its script, URI and Lua traceback written once, by
// the watchdog goroutine. The traceback is taken on the loop's thread by a
// one-shot Lua hook (luabind.Tracer); a request inside C does not reach it
// in traceWait and is logged as in C.

// SlowReporter is implemented by a Reporter that also counts the requests
// written to the slow log, for the status page. SlowLogged may be called
// from any goroutine.
type SlowReporter interface {
	SlowLogged()
}

// traceWait is how long the slow log waits for the script to reach a Lua
// instruction before it writes the request as stuck in C.
const traceWait = 100 * time.Millisecond

// slowRequest logs the request counted n (odd), running for age.
func (s *Server) slowRequest(n uint64, age time.Duration, tracer *luabind.Tracer) {
	// the loop writes the names before n turned odd and not again while
	// the request runs
	script := string(s.wd.script[:s.wd.n])
	uri := string(s.wd.uri[:s.wd.nuri])
	var tb []byte
	ok := false
	if tracer != nil {
		tb, ok = tracer.Traceback(nil, traceWait)
	}
	note := "in C: no Lua instruction ran within " + traceWait.String()
	if s.wd.seq.Load() != n {
		// it ended meanwhile: a traceback could be a later request's
		tb, ok = nil, false
		note = "finished before its traceback was taken"
	}
	if r, yes := s.cfg.Reporter.(SlowReporter); yes {
		r.SlowLogged()
	}
	dur := age.Round(time.Millisecond).String()
	if w := s.cfg.SlowLog; w != nil {
		s.log.Warn("slow request, logging", "script", script, "uri", uri, "duration", dur)
		entry := fmt.Sprintf("\n[%s] pid %d, running %s\nscript_filename = %s\nuri = %s\n",
			time.Now().Format("02-Jan-2006 15:04:05"), os.Getpid(), dur, script, uri)
		if ok {
			entry += string(tb)
		} else {
			entry += note + "\n"
		}
		if _, err := io.WriteString(w, entry); err != nil {
			s.log.Warn("writing the slow log", "err", err)
		}
		return
	}
	if ok {
		s.log.Warn("slow request", "script", script, "uri", uri, "duration", dur, "traceback", string(tb))
	} else {
		s.log.Warn("slow request", "script", script, "uri", uri, "duration", dur, "traceback", note)
	}
}
