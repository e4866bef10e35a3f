package protocol

import (
	"errors"
	"strings"
	"testing"
)

// TestSkipRequest: after a limit error, SkipRequest lets the caller answer
// the request: the rest of it is dropped up to the end of its body, and the
// next request on the connection is decoded as usual.
func TestSkipRequest(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		lim    Limits
	}{
		{"too many params", beginParams(1, "a", "1", "b", "2", "c", "3"), Limits{MaxParams: 2}},
		{"params too long", beginParams(1, "a", strings.Repeat("x", 2000), "b", "2"), Limits{MaxParamsBytes: 1000}},
		{"300 KB param", beginParams(1, "a", strings.Repeat("x", 300<<10)), Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := append([]byte(nil), tt.stream...)
			s = AppendStream(s, TypeStdin, 1, []byte("dropped body"))
			s = AppendRecord(s, TypeStdin, 1, nil)
			s = append(s, beginParams(2, "NEXT", "1")...)
			s = AppendRecord(s, TypeStdin, 2, nil)
			for _, step := range []int{len(s), 1000, 1} {
				c := NewConn(tt.lim)
				var trace []string
				limited := 0
				for off := 0; ; {
					ev, err := c.Next()
					if err != nil {
						if !errors.Is(err, ErrLimit) {
							t.Fatalf("error %v, want ErrLimit", err)
						}
						if c.RequestID() != 1 {
							t.Fatalf("over-limit request id %d", c.RequestID())
						}
						if !c.SkipRequest() {
							t.Fatal("SkipRequest refused a limit error")
						}
						if c.Params() != nil {
							t.Fatal("params of a skipped request")
						}
						limited++
						continue
					}
					switch ev.Kind {
					case EventNone:
						if off == len(s) {
							goto done
						}
						n := copy(c.ReadBuffer(), s[off:min(off+step, len(s))])
						c.Advance(n)
						off += n
						continue
					case EventStdin:
						t.Fatalf("body of a skipped request delivered: %q", ev.Data)
					case EventStdinEnd:
						c.FinishRequest()
					case EventRequest:
						if v, _ := c.Params().Lookup("NEXT"); string(v) != "1" {
							t.Fatalf("next request's params %q", c.Params())
						}
					}
					trace = append(trace, ev.Kind.String())
				}
			done:
				if got := strings.Join(trace, " "); limited != 1 || got != "EventStdinEnd EventRequest EventStdinEnd" {
					t.Fatalf("step %d: %d limit errors, events %s", step, limited, got)
				}
			}
		})
	}
}

// TestSkipRequestOnlyLimits: other errors stay fatal.
func TestSkipRequestOnlyLimits(t *testing.T) {
	c := NewConn(Limits{})
	if c.SkipRequest() {
		t.Fatal("SkipRequest without an error")
	}
	s := AppendRecord(AppendBeginRequest(nil, 1, RoleResponder, 0), TypeStdin, 1, []byte("x"))
	c.Advance(copy(c.ReadBuffer(), s))
	_, err := c.Next()
	if err == nil || c.SkipRequest() {
		t.Fatalf("error %v skipped", err)
	}
	if _, err2 := c.Next(); err2 != err {
		t.Fatalf("error did not stick: %v", err2)
	}
}
