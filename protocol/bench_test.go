package protocol

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// typicalPairs is what nginx sends for a GET with its stock fastcgi_params
// and a few browser headers: 31 pairs.
var typicalPairs = []Pair{
	{"QUERY_STRING", "id=42&sort=desc"},
	{"REQUEST_METHOD", "GET"},
	{"CONTENT_TYPE", ""},
	{"CONTENT_LENGTH", ""},
	{"SCRIPT_NAME", "/app/index.lua"},
	{"REQUEST_URI", "/app/index.lua?id=42&sort=desc"},
	{"DOCUMENT_URI", "/app/index.lua"},
	{"DOCUMENT_ROOT", "/srv/www/htdocs"},
	{"SERVER_PROTOCOL", "HTTP/1.1"},
	{"REQUEST_SCHEME", "http"},
	{"GATEWAY_INTERFACE", "CGI/1.1"},
	{"SERVER_SOFTWARE", "nginx/1.22.1"},
	{"REMOTE_ADDR", "192.0.2.17"},
	{"REMOTE_PORT", "53124"},
	{"REMOTE_USER", ""},
	{"SERVER_ADDR", "192.0.2.1"},
	{"SERVER_PORT", "80"},
	{"SERVER_NAME", "www.example.org"},
	{"REDIRECT_STATUS", "200"},
	{"SCRIPT_FILENAME", "/srv/www/htdocs/app/index.lua"},
	{"PATH_INFO", ""},
	{"HTTP_HOST", "www.example.org"},
	{"HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"},
	{"HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"},
	{"HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"},
	{"HTTP_ACCEPT_ENCODING", "gzip, deflate, br"},
	{"HTTP_CONNECTION", "keep-alive"},
	{"HTTP_COOKIE", "session=7f3a9c2e4b1d8f6a; theme=dark"},
	{"HTTP_UPGRADE_INSECURE_REQUESTS", "1"},
	{"HTTP_CACHE_CONTROL", "max-age=0"},
	{"HTTP_REFERER", "http://www.example.org/app/"},
}

func typicalParams() []byte {
	var b []byte
	for _, p := range typicalPairs {
		b = AppendPair(b, p.Name, p.Value)
	}
	return b
}

func typicalRequest() []byte {
	return EncodeRequest(nil, &Request{ID: 1, KeepConn: true, Params: typicalPairs})
}

// decodeOne feeds one encoded request to c, as a worker on a keep-alive
// connection would, and checks the events.
func decodeOne(tb testing.TB, c *Conn, req []byte) {
	n := copy(c.ReadBuffer(), req)
	c.Advance(n)
	for {
		ev, err := c.Next()
		if err != nil {
			tb.Fatal(err)
		}
		switch ev.Kind {
		case EventNone:
			return
		case EventRequest:
			if _, ok := c.Params().Lookup("SCRIPT_FILENAME"); !ok {
				tb.Fatal("no SCRIPT_FILENAME")
			}
		case EventStdinEnd:
			c.FinishRequest()
		default:
			tb.Fatalf("unexpected %v", ev.Kind)
		}
	}
}

func TestDecodeNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	req := typicalRequest()
	c := NewConn(Limits{})
	decodeOne(t, c, req)
	if allocs := testing.AllocsPerRun(100, func() { decodeOne(t, c, req) }); allocs != 0 {
		t.Fatalf("decoding a request: %v allocations", allocs)
	}
	out := AppendResponse(nil, 1, make([]byte, 2000), nil, 0)
	body := bytes.Repeat([]byte("x"), 2000)
	if allocs := testing.AllocsPerRun(100, func() { out = AppendResponse(out[:0], 1, body, nil, 0) }); allocs != 0 {
		t.Fatalf("encoding a response: %v allocations", allocs)
	}
	enc := EncodeRequest(nil, &Request{Params: typicalPairs})
	if allocs := testing.AllocsPerRun(100, func() { enc = EncodeRequest(enc[:0], &Request{Params: typicalPairs}) }); allocs != 0 {
		t.Fatalf("encoding a request: %v allocations", allocs)
	}
	resp := AppendResponse(nil, 1, body, []byte("err"), 0)
	r := bufio.NewReader(bytes.NewReader(resp))
	if allocs := testing.AllocsPerRun(100, func() {
		r.Reset(bytes.NewReader(resp))
		if _, _, err := ReadResponse(r, 1, func([]byte) {}, nil); err != nil {
			t.Fatal(err)
		}
	}); allocs > 1 { // bytes.NewReader
		t.Fatalf("reading a response: %v allocations", allocs)
	}
}

// BenchmarkConnDecode decodes a typical nginx request (31 params, empty
// STDIN) on a reused Conn, as a worker does on a keep-alive connection.
func BenchmarkConnDecode(b *testing.B) {
	req := typicalRequest()
	c := NewConn(Limits{})
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		decodeOne(b, c, req)
	}
}

// BenchmarkAppendResponse encodes a 2 KiB response into a reused buffer.
func BenchmarkAppendResponse(b *testing.B) {
	body := []byte("Content-Type: text/html\r\n\r\n" + strings.Repeat("<p>hello</p>", 170))
	var out []byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		out = AppendResponse(out[:0], 1, body, nil, 0)
	}
}

// BenchmarkParamsLookup finds one param in a typical block.
func BenchmarkParamsLookup(b *testing.B) {
	p := Params(typicalParams())
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.Lookup("HTTP_REFERER"); !ok {
			b.Fatal("not found")
		}
	}
}

// BenchmarkClientRoundTrip sends typical requests with Client.Do over a
// unix socket to a Conn-based server on one keep-alive connection.
func BenchmarkClientRoundTrip(b *testing.B) {
	body := []byte("Content-Type: text/plain\r\n\r\nhello\n")
	s := startServer(b, Limits{}, func(Params, []byte) ([]byte, []byte, uint32) { return body, nil, 0 })
	c := s.dial(b)
	req := &Request{KeepConn: true, Params: typicalPairs}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Do(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawRoundTrip is BenchmarkClientRoundTrip on the load
// generators' path: a pre-encoded request and ReadResponse.
func BenchmarkRawRoundTrip(b *testing.B) {
	body := []byte("Content-Type: text/plain\r\n\r\nhello\n")
	s := startServer(b, Limits{}, func(Params, []byte) ([]byte, []byte, uint32) { return body, nil, 0 })
	c := s.dial(b)
	req := EncodeRequest(nil, &Request{KeepConn: true, Params: typicalPairs})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.conn.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ReadResponse(c.br, 1, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
