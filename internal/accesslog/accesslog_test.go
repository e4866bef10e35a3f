package accesslog

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestAccessLog(t *testing.T) {
	var log bytes.Buffer
	h := Handler(&log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "hello")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/x.lua?a=1", nil)
	req.Header.Set("User-Agent", "test-agent")
	req.Header.Set("Referer", "http://example.org/")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	srv.Close() // waits for the handler, which logs after answering
	want := regexp.MustCompile(`^127\.0\.0\.1 - - \[[^]]+\] "GET /x\.lua\?a=1 HTTP/1\.1" 418 5 "http://example\.org/" "test-agent" \d+\.\d{3}\n$`)
	if !want.MatchString(log.String()) {
		t.Errorf("access log line %q", log.String())
	}
}

// TestAccessLogDashes: a missing referer and user agent are "-", as the
// Combined Log Format writes them; the duration covers the handler.
func TestAccessLogDashes(t *testing.T) {
	var log bytes.Buffer
	h := Handler(&log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // the duration to be logged
		io.WriteString(w, "ok")
	}))
	req := httptest.NewRequest("GET", "/y.lua", nil)
	req.Header.Del("User-Agent")
	h.ServeHTTP(httptest.NewRecorder(), req)
	m := regexp.MustCompile(`^192\.0\.2\.1 - - \[[^]]+\] "GET /y\.lua HTTP/1\.1" 200 2 "-" "-" (\d+\.\d{3})\n$`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("access log line %q", log.String())
	}
	if d, err := strconv.ParseFloat(m[1], 64); err != nil || d < 0.020 {
		t.Errorf("duration %s, want at least 0.020", m[1])
	}
}
