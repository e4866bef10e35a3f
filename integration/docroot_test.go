package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// makeDocroot returns a temporary directory holding a copy of the seed
// scripts (examples/*.lua) and the test scripts (testdata/scripts/*.lua).
func makeDocroot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, pattern := range []string{
		filepath.Join(repoRoot, "examples", "*.lua"),
		filepath.Join("testdata", "scripts", "*.lua"),
	} {
		files, err := filepath.Glob(pattern)
		if err != nil || len(files) == 0 {
			t.Fatalf("no scripts match %s (%v)", pattern, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// httpClient is the client of the web server tests; it keeps connections
// alive.
var httpClient = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	},
}

// httpResult is a complete HTTP response.
type httpResult struct {
	status int
	header http.Header
	body   string
}

// httpDo sends req and reads the whole response.
func httpDo(req *http.Request) (httpResult, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpResult{}, err
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// get fetches url; it is safe to call from any goroutine.
func get(url string) (httpResult, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return httpResult{}, err
	}
	r, err := httpDo(req)
	if err != nil {
		return httpResult{}, fmt.Errorf("GET %s: %w", url, err)
	}
	return r, nil
}

// httpGet fetches url, failing the test on a transport error.
func httpGet(t *testing.T, url string) httpResult {
	t.Helper()
	r, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// check123 asserts the seed's 123.lua answer: exact body and length.
func check123(t *testing.T, r httpResult) {
	t.Helper()
	if r.status != 200 || r.body != "123" || r.header.Get("Content-Length") != "3" {
		t.Fatalf("123.lua: got status %d, Content-Length %q, body %q; want 200, \"3\", \"123\"",
			r.status, r.header.Get("Content-Length"), r.body)
	}
}
