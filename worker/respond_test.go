package worker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestNotCGI: printed output without a header block, from a script that
// never touched magnet.header or magnet.status, is a 500 whose log line
// says what to do; a printed header block (CRLF or LF line ends, a Status
// or a Location alone) and a structured response are served.
func TestNotCGI(t *testing.T) {
	dir := t.TempDir()
	var log syncBuffer
	sock, _ := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	cl := dial(t, sock)
	for _, tc := range []struct {
		name, src string
		status    int
		body      string
	}{
		{"bare", `print("hi")`, 500, ""},
		{"nothing", `local x = 1`, 500, ""},
		{"html", `print("<p>Note: a page</p>\n\nmore")`, 500, ""},
		{"json", `io.write('{"a": 1}\n\n')`, 500, ""},
		{"blank first", `print("\nhi")`, 500, ""},
		{"unended", `io.write("Content-Type: text/plain\r\n")`, 500, ""},
		{"lf", `print("Content-Type: text/plain\n\nhi")`, 200, "hi"},
		{"crlf", `io.write("Content-Type: text/plain\r\n\r\nhi")`, 200, "hi"},
		{"status", `io.write("Status: 200\r\n\r\n")`, 200, ""},
		{"location", `io.write("Location: /x\r\n\r\n")`, 302, ""},
		{"header", `magnet.header["Content-Type"] = "text/plain" print("hi")`, 200, "hi"},
		{"status set", `magnet.status = 200 io.write("hi")`, 200, "hi"},
	} {
		script := writeScript(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".lua", tc.src)
		status, body, resp := get(t, cl, script, true)
		if status != tc.status || tc.status == 200 && body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, resp.Stdout, tc.status, tc.body)
		}
		if tc.status == 500 && !bytes.Contains(resp.Stderr, []byte("set magnet.header or magnet.status, or print a header block")) {
			t.Errorf("%s: stderr %q", tc.name, resp.Stderr)
		}
	}
	if l := log.String(); !strings.Contains(l, "not a CGI response: set magnet.header or magnet.status, or print a header block") || !strings.Contains(l, `(it begins \"hi\")`) {
		t.Errorf("log:\n%s", l)
	}
}

func TestHeaderEnd(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
	}{
		{"Content-Type: text/plain\r\n\r\nhi", 28},
		{"Content-Type: text/plain\n\nhi", 26},
		{"Status: 200\n\n", 13},
		{"Location: /x\r\n\r\n", 16},
		{"A: 1\r\nB: 2\n\nbody: x\n\n", 12},
		{"X-Odd_Name.1: v\n\n", 17},
		{"", -1},
		{"hi", -1},
		{"hi\n", -1},
		{"\n\nhi", -1},
		{"Content-Type: text/plain\r\n", -1},
		{"Bad Name: x\n\n", -1},
		{": x\n\n", -1},
		{"{\"a\": 1}\n\n", -1},
		{"<p>Note: x</p>\n\n", -1},
		{" folded: x\n\n", -1},
	} {
		if got := headerEnd([]byte(tc.out)); got != tc.want {
			t.Errorf("headerEnd(%q) = %d, want %d", tc.out, got, tc.want)
		}
	}
}
