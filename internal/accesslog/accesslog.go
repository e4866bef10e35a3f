package accesslog

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Handler wraps h to write one line per request to w in the Combined
// Log Format that web servers use, "-" for a missing referer or user
// agent, followed by the request's duration in seconds with millisecond
// resolution, as nginx's $request_time.
func Handler(w io.Writer, h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: rw, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r)
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		took := time.Since(start)
		fmt.Fprintf(w, "%s - - [%s] %q %d %d %q %q %d.%03d\n",
			host, start.Format("02/Jan/2006:15:04:05 -0700"),
			r.Method+" "+r.RequestURI+" "+r.Proto, rec.status, rec.bytes,
			orDash(r.Referer()), orDash(r.UserAgent()),
			took/time.Second, took%time.Second/time.Millisecond)
	})
}

// statusRecorder remembers a response's status and size.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Flush lets streamed responses through.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the original writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// orDash is s, or "-" for an empty field as the Combined Log Format has it.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
