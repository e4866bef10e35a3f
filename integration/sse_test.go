package integration

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSSENginx runs examples/sse.lua through magnetd behind nginx
// (fastcgi_buffering off): the first event reaches the HTTP client while
// the script still runs. The script streams the lines of a file and ends
// at a line "end", which the test writes only after it has read the
// first event.
func TestSSENginx(t *testing.T) {
	s := startSite(t)
	base := s.nginx(t)
	file := filepath.Join(s.dir, "sse.txt")
	if err := os.WriteFile(file, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"sse.lua", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	var got []string
	for !strings.Contains(strings.Join(got, ""), "data: one\n\n") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for the first event: %v (got %q)", err, got)
		}
		got = append(got, line)
	}
	// the script is still looking at the file: let it end
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("two\nend\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var rest strings.Builder
	if _, err := br.WriteTo(&rest); err != nil {
		t.Fatalf("rest of the stream: %v (got %q)", err, rest.String())
	}
	if want := "id: 2\ndata: two\n\nevent: end\ndata: bye\n\n"; rest.String() != want {
		t.Fatalf("rest of the stream %q, want %q (first part %q)", rest.String(), want, got)
	}
	if !strings.HasPrefix(got[0], ": lines of ") || !strings.Contains(strings.Join(got, ""), "id: 1\ndata: one\n\n") {
		t.Fatalf("first part %q", got)
	}
}
