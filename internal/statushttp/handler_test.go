package statushttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/scoreboard"
	"github.com/magnet-fcgi/magnet/internal/status"
)

func testPool(t *testing.T) *status.Pool {
	t.Helper()
	b, err := scoreboard.Create(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p := &status.Pool{Name: "www", PM: "static", Board: b, Start: time.Now().Add(-time.Minute)}
	if err := p.Update(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHandler(t *testing.T) {
	p := testPool(t)
	srv := httptest.NewServer(Handler(p))
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get("/ping")
	if resp.StatusCode != 200 || body != "pong" || resp.Header.Get("Cache-Control") == "" {
		t.Errorf("ping: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get("/status?json&full")
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !strings.Contains(body, `"processes":[`) {
		t.Errorf("json: %s %s", ct, body)
	}
	resp, body = get("/status")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.HasPrefix(body, "pool:") {
		t.Errorf("text: %s %s", ct, body)
	}
	resp, body = get("/status?openmetrics")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Errorf("openmetrics: %s %s", ct, body)
	}
	resp, _ = get("/status?prometheus")
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "version=0.0.4") {
		t.Errorf("prometheus: %s", ct)
	}
	if resp, _ := get("/other"); resp.StatusCode != 404 {
		t.Errorf("/other: %d", resp.StatusCode)
	}
}
