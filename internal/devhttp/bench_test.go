package devhttp

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkFront measures a GET through the front to a FastCGI responder
// on a kept connection, over a real HTTP connection.
func BenchmarkFront(b *testing.B) {
	rr := &rawResponder{answers: map[string][2]string{"/a.lua": {"Content-Type: text/plain\r\n\r\n123", ""}}}
	srv, _ := rawFront(b, rr)
	defer srv.Close()
	c := &http.Client{}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(srv.URL + "/a.lua")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
