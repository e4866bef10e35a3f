package main

import (
	"bufio"
	"net"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/magnet-fcgi/magnet/protocol"
)

// serveCanned starts a FastCGI responder that answers every request with
// the same pre-encoded response and allocates nothing per request, so
// that a test can count the load generator's allocations.
func serveCanned(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "canned.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	resp := protocol.AppendResponse(nil, 1, []byte("Content-Length: 3\r\n\r\n123"), nil, 0)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReaderSize(c, 64<<10)
				for {
					b, err := r.Peek(protocol.HeaderLen)
					if err != nil {
						return
					}
					h := protocol.ParseHeader(b)
					if _, err := r.Discard(protocol.HeaderLen + int(h.ContentLength) + int(h.PaddingLength)); err != nil {
						return
					}
					if h.Type == protocol.TypeStdin && h.ContentLength == 0 {
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return path
}

func TestKeepConnAllocatesLittle(t *testing.T) {
	addr := serveCanned(t)
	const n = 20000
	for _, raw := range []bool{false, true} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res, err := run(config{network: "unix", addr: addr, conns: 2, keepConn: true, total: n,
			script: "/srv/123.lua", expect: "123", raw: raw})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests < n || res.Failures != 0 {
			t.Fatalf("raw=%v: unexpected result %+v", raw, res)
		}
		// The fixed cost of a run (histograms, buffers, goroutines) is
		// spread over n requests; the canned server allocates nothing.
		if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.1 {
			t.Errorf("raw=%v: %.2f allocations per request, want none", raw, per)
		}
	}
}
