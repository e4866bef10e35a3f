package worker

import (
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/protocol"
)

// serverPair builds a worker (without running its loop) holding one end of
// a socketpair as a connection, and a pre-encoded 123.lua request.
func serverPair(tb testing.TB) (s *Server, c *conn, peer int, req []byte) {
	tb.Helper()
	lfd, err := Listen(filepath.Join(tb.TempDir(), "l.sock"), 1)
	if err != nil {
		tb.Fatal(err)
	}
	s, err = New(Config{ListenFD: lfd})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fds[1]) })
	c = s.newConn(fds[0])
	root, _ := filepath.Abs("../examples")
	params := []protocol.Pair{
		{Name: "SCRIPT_FILENAME", Value: filepath.Join(root, "123.lua")}, {Name: "SCRIPT_NAME", Value: "/123.lua"},
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "REQUEST_URI", Value: "/123.lua"}, {Name: "QUERY_STRING", Value: ""},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"}, {Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"}, {Name: "REMOTE_ADDR", Value: "127.0.0.1"},
		{Name: "HTTP_HOST", Value: "localhost"}, {Name: "HTTP_USER_AGENT", Value: "bench"}, {Name: "DOCUMENT_ROOT", Value: root},
	}
	req = protocol.EncodeRequest(nil, &protocol.Request{KeepConn: true, Params: params})
	return s, c, fds[1], req
}

// roundTrip sends req, lets the worker serve it and drains the response.
func roundTrip(tb testing.TB, s *Server, c *conn, peer int, req, buf []byte) {
	if _, err := unix.Write(peer, req); err != nil {
		tb.Fatal(err)
	}
	s.serveConn(c)
	if _, err := unix.Read(peer, buf); err != nil {
		tb.Fatal(err)
	}
}

// TestNoAllocPerRequest: in steady state a 123.lua request allocates
// nothing on the Go heap.
func TestNoAllocPerRequest(t *testing.T) {
	s, c, peer, req := serverPair(t)
	noAllocRoundTrips(t, s, c, peer, req)
}

// noAllocRoundTrips fails t unless a request on the pair, once warm,
// allocates nothing.
func noAllocRoundTrips(t *testing.T, s *Server, c *conn, peer int, req []byte) {
	t.Helper()
	buf := make([]byte, 4096)
	for i := 0; i < 10; i++ {
		roundTrip(t, s, c, peer, req, buf)
	}
	if n := testing.AllocsPerRun(1000, func() { roundTrip(t, s, c, peer, req, buf) }); n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
}

// BenchmarkServeConn is the worker's side of one keep-alive request:
// decode, stat, run 123.lua, encode, write.
func BenchmarkServeConn(b *testing.B) {
	s, c, peer, req := serverPair(b)
	benchRoundTrips(b, s, c, peer, req)
}

// benchRoundTrips times b.N requests on the pair after one warm-up.
func benchRoundTrips(b *testing.B, s *Server, c *conn, peer int, req []byte) {
	buf := make([]byte, 4096)
	roundTrip(b, s, c, peer, req, buf)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip(b, s, c, peer, req, buf)
	}
}

// TestNoAllocBusyPoll: polling for the next request allocates nothing
// either, whether it finds one or gives up.
func TestNoAllocBusyPoll(t *testing.T) {
	s, c, peer, req := serverPair(t)
	s.cfg.BusyPoll = 20 * time.Microsecond
	buf := make([]byte, 4096)
	roundTrip(t, s, c, peer, req, buf)
	n := testing.AllocsPerRun(200, func() {
		s.busy = true
		if _, errno := s.busyRead(c); errno != unix.EAGAIN {
			t.Fatalf("busyRead on a quiet connection: %v", errno)
		}
		s.busy = true
		if n, errno := s.busyWait(); n != 0 || errno != 0 {
			t.Fatalf("busyWait on a quiet epoll set: %d, %v", n, errno)
		}
		roundTrip(t, s, c, peer, req, buf)
	})
	if n != 0 {
		t.Fatalf("%v allocations per poll and request, want 0", n)
	}
}
