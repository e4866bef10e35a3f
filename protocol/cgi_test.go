package protocol

import (
	"net/http"
	"testing"
)

func TestParseCGI(t *testing.T) {
	tests := []struct {
		in       string
		status   int
		header   http.Header
		body     string
		hasError bool
	}{
		{in: "Content-Type: text/html\r\n\r\n<p>hi</p>", status: 200,
			header: http.Header{"Content-Type": {"text/html"}}, body: "<p>hi</p>"},
		{in: "Content-Type: text/plain\n\nLF only\r\n\r\nkept", status: 200,
			header: http.Header{"Content-Type": {"text/plain"}}, body: "LF only\r\n\r\nkept"},
		{in: "Status: 404 Not Found\r\nContent-type:  text/plain \r\nX-A: 1\r\nX-A: 2\r\n\r\nmissing", status: 404,
			header: http.Header{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}}, body: "missing"},
		{in: "Location: http://example.org/\r\n\r\n", status: 302,
			header: http.Header{"Location": {"http://example.org/"}}},
		{in: "Location: /local/path\n\n", status: 302,
			header: http.Header{"Location": {"/local/path"}}},
		{in: "Status: 301 Moved Permanently\r\nLocation: /elsewhere\r\n\r\nbody", status: 301,
			header: http.Header{"Location": {"/elsewhere"}}, body: "body"},
		{in: "Status: 204\r\n\r\n", status: 204, header: http.Header{}},
		{in: "\r\nno headers", status: 200, header: http.Header{}, body: "no headers"},
		{in: "", hasError: true},
		{in: "Content-Type: text/html\r\n", hasError: true},
		{in: "Content-Type: text/html\r\nbody without blank line", hasError: true},
		{in: "no colon\r\n\r\n", hasError: true},
		{in: ": empty name\r\n\r\n", hasError: true},
		{in: "Bad Name: x\r\n\r\n", hasError: true},
		{in: "Status: abc\r\n\r\n", hasError: true},
		{in: "Status: 42\r\n\r\n", hasError: true},
		{in: "Status: 2000 x\r\n\r\n", hasError: true},
	}
	for _, tt := range tests {
		status, header, body, err := ParseCGI([]byte(tt.in))
		if tt.hasError {
			if err == nil {
				t.Errorf("%q: no error", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if status != tt.status || string(body) != tt.body {
			t.Errorf("%q: got %d %q, want %d %q", tt.in, status, body, tt.status, tt.body)
		}
		if len(header) != len(tt.header) {
			t.Errorf("%q: header %v, want %v", tt.in, header, tt.header)
		}
		for k, v := range tt.header {
			if got := header.Values(k); len(got) != len(v) || (len(v) > 0 && got[0] != v[0]) {
				t.Errorf("%q: %s = %q, want %q", tt.in, k, got, v)
			}
		}
	}
}
