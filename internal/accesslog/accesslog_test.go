package accesslog

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
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
	want := regexp.MustCompile(`^127\.0\.0\.1 - - \[[^]]+\] "GET /x\.lua\?a=1 HTTP/1\.1" 418 5 "http://example\.org/" "test-agent"\n$`)
	if !want.MatchString(log.String()) {
		t.Errorf("access log line %q", log.String())
	}
}
