package protocol

import (
	"errors"
	"strings"
	"testing"
)

func beginParams(id uint16, pairs ...string) []byte {
	s := AppendBeginRequest(nil, id, RoleResponder, FlagKeepConn)
	var p []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		p = AppendPair(p, pairs[i], pairs[i+1])
	}
	s = AppendStream(s, TypeParams, id, p)
	return AppendRecord(s, TypeParams, id, nil)
}

// TestConnErrors: malformed streams give an error (never a panic), and the
// error sticks.
func TestConnErrors(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		lim    Limits
		is     error
	}{
		{"bad version", append(AppendHeader(nil, TypeStdin, 1, 0, 0)[:0:0], 2, 5, 0, 1, 0, 0, 0, 0), Limits{}, nil},
		{"version 0 garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Limits{}, nil},
		{"short begin", AppendRecord(nil, TypeBeginRequest, 1, []byte{0, 1, 1}), Limits{}, nil},
		{"name length past block", func() []byte {
			s := AppendBeginRequest(nil, 1, RoleResponder, 0)
			s = AppendRecord(s, TypeParams, 1, []byte{5, 1, 'a', 'b'})
			return AppendRecord(s, TypeParams, 1, nil)
		}(), Limits{}, ErrBadParams},
		{"4-byte length past block", func() []byte {
			s := AppendBeginRequest(nil, 1, RoleResponder, 0)
			s = AppendRecord(s, TypeParams, 1, []byte{0xff, 0xff, 0xff, 0xff, 0, 'a'})
			return AppendRecord(s, TypeParams, 1, nil)
		}(), Limits{}, ErrBadParams},
		{"cut 4-byte length", func() []byte {
			s := AppendBeginRequest(nil, 1, RoleResponder, 0)
			s = AppendRecord(s, TypeParams, 1, []byte{1, 0x80, 0})
			return AppendRecord(s, TypeParams, 1, nil)
		}(), Limits{}, ErrBadParams},
		{"bad GET_VALUES", AppendRecord(nil, TypeGetValues, 0, []byte{9, 0, 'x'}), Limits{}, ErrBadParams},
		{"stdin before params end", func() []byte {
			s := AppendBeginRequest(nil, 1, RoleResponder, 0)
			return AppendRecord(s, TypeStdin, 1, []byte("x"))
		}(), Limits{}, nil},
		{"begin twice", func() []byte {
			s := AppendBeginRequest(nil, 1, RoleResponder, 0)
			return AppendBeginRequest(s, 1, RoleResponder, 0)
		}(), Limits{}, nil},
		{"too many params", beginParams(1, "a", "1", "b", "2", "c", "3"), Limits{MaxParams: 2}, ErrLimit},
		{"params too long", beginParams(1, "a", strings.Repeat("x", 2000)), Limits{MaxParamsBytes: 1000}, ErrLimit},
		{"4 MiB params", beginParams(1, "a", strings.Repeat("x", 4<<20)), Limits{}, ErrLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cuts := range [][]int{nil, {1}, {len(tt.stream) / 2}} {
				got, err := transcript(t, tt.lim, tt.stream, cuts...)
				if err == nil {
					t.Fatalf("no error; events:\n%s", got)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Fatalf("error %v, want %v", err, tt.is)
				}
			}
			c := NewConn(tt.lim)
			var out strings.Builder
			err := feed(t, c, tt.stream, &out)
			if err == nil {
				t.Fatal("no error")
			}
			if _, err2 := c.Next(); err2 != err {
				t.Fatalf("error did not stick: %v then %v", err, err2)
			}
			c.Reset()
			if ev, err := c.Next(); err != nil || ev.Kind != EventNone {
				t.Fatalf("after Reset: %v %v", ev.Kind, err)
			}
		})
	}
}

// TestConnLyingLength: a record announcing more content than the peer
// sends is never delivered, and the Conn reports the held bytes.
func TestConnLyingLength(t *testing.T) {
	s := beginParams(1)
	s = append(AppendHeader(s, TypeStdin, 1, MaxContentLen, 255), "short"...)
	got, err := transcript(t, Limits{}, s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "REQUEST 1 keep=true\nTRUNCATED 13\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestConnReadBufferBound: a peer cannot make the read buffer grow past
// its bound, and a Conn that is reused keeps its buffers.
func TestConnReadBufferBound(t *testing.T) {
	c := NewConn(Limits{})
	s := beginParams(1)
	for i := 0; i < 10; i++ {
		s = appendPadded(s, TypeStdin, 1, make([]byte, MaxContentLen), 255)
	}
	var out strings.Builder
	if err := feed(t, c, s, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "STDIN 1") != 10 {
		t.Fatalf("events:\n%s", out.String())
	}
	if len(c.buf) > maxBufLen {
		t.Fatalf("buffer %d bytes", len(c.buf))
	}
	buf := &c.buf[0]
	c.Reset()
	c.ReadBuffer()
	if &c.buf[0] != buf {
		t.Fatal("Reset dropped the read buffer")
	}
}

// TestConnFinishSkipsStdin: after FinishRequest the rest of the body is
// skipped and the next request on the connection is decoded.
func TestConnFinishSkipsStdin(t *testing.T) {
	s := beginParams(1, "A", "1")
	s = AppendRecord(s, TypeStdin, 1, []byte("body"))
	s = AppendRecord(s, TypeStdin, 1, nil)
	s = append(s, beginParams(1, "B", "2")...)
	s = AppendRecord(s, TypeStdin, 1, nil)
	c := NewConn(Limits{})
	n := copy(c.ReadBuffer(), s)
	if n != len(s) {
		t.Fatal("short copy")
	}
	c.Advance(n)
	var kinds []EventKind
	for {
		ev, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == EventNone {
			break
		}
		kinds = append(kinds, ev.Kind)
		if ev.Kind == EventRequest {
			if c.Params() == nil {
				t.Fatal("no params")
			}
			c.FinishRequest() // answer at once, without reading the body
			if c.Params() != nil {
				t.Fatal("params after FinishRequest")
			}
		}
	}
	if len(kinds) != 2 || kinds[0] != EventRequest || kinds[1] != EventRequest {
		t.Fatalf("events %v", kinds)
	}
}
