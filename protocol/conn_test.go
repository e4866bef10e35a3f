package protocol

import (
	"fmt"
	"strings"
	"testing"
)

// transcript feeds stream to a new Conn in pieces cut at cuts (increasing
// offsets) and returns what a worker would see, one line per event. It
// finishes each request at EventStdinEnd and EventAbort. It fails t if the
// Conn ever holds more than its bounds.
func transcript(t testing.TB, lim Limits, stream []byte, cuts ...int) (string, error) {
	c := NewConn(lim)
	var out strings.Builder
	prev := 0
	for i := 0; i <= len(cuts); i++ {
		end := len(stream)
		if i < len(cuts) {
			end = cuts[i]
		}
		if err := feed(t, c, stream[prev:end], &out); err != nil {
			return out.String(), err
		}
		prev = end
	}
	if c.Buffered() > 0 {
		fmt.Fprintf(&out, "TRUNCATED %d\n", c.Buffered())
	}
	return out.String(), nil
}

// feed gives chunk to c and drains its events into out.
func feed(t testing.TB, c *Conn, chunk []byte, out *strings.Builder) error {
	for len(chunk) > 0 {
		buf := c.ReadBuffer()
		checkBounds(t, c)
		if len(buf) < minReadSpace {
			t.Fatalf("ReadBuffer gave %d bytes", len(buf))
		}
		n := copy(buf, chunk)
		c.Advance(n)
		chunk = chunk[n:]
		for {
			ev, err := c.Next()
			if err != nil {
				fmt.Fprintf(out, "ERROR\n")
				return err
			}
			if ev.Kind == EventNone {
				break
			}
			writeEvent(out, c, ev)
		}
	}
	return nil
}

func writeEvent(out *strings.Builder, c *Conn, ev Event) {
	switch ev.Kind {
	case EventRequest:
		fmt.Fprintf(out, "REQUEST %d keep=%v", ev.RequestID, c.KeepConn())
		p := c.Params()
		for off := 0; off < len(p); {
			n, v, next, err := p.Next(off)
			if err != nil {
				fmt.Fprintf(out, " BAD")
				break
			}
			fmt.Fprintf(out, " %s=%q", shorten(n), shorten(v))
			off = next
		}
		out.WriteString("\n")
	case EventStdin:
		fmt.Fprintf(out, "STDIN %d %q\n", ev.RequestID, shorten(ev.Data))
	case EventStdinEnd:
		fmt.Fprintf(out, "STDINEND %d\n", ev.RequestID)
		c.FinishRequest()
	case EventAbort:
		fmt.Fprintf(out, "ABORT %d\n", ev.RequestID)
		c.FinishRequest()
	case EventReply:
		fmt.Fprintf(out, "REPLY %d close=%v %x\n", ev.RequestID, ev.Close, ev.Data)
	default:
		fmt.Fprintf(out, "%v\n", ev.Kind)
	}
}

func shorten(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", b[:40], len(b))
	}
	return string(b)
}

func checkBounds(t testing.TB, c *Conn) {
	if len(c.buf) > maxBufLen {
		t.Fatalf("read buffer grew to %d bytes", len(c.buf))
	}
	if cap(c.params) > max(c.lim.MaxParamsBytes, initParams) {
		t.Fatalf("params buffer grew to %d bytes", cap(c.params))
	}
	if cap(c.reply) > 1024 {
		t.Fatalf("reply buffer grew to %d bytes", cap(c.reply))
	}
}

// appendPadded appends a record with an explicit padding length.
func appendPadded(dst []byte, typ uint8, id uint16, content []byte, pad int) []byte {
	dst = AppendHeader(dst, typ, id, len(content), pad)
	dst = append(dst, content...)
	return append(dst, make([]byte, pad)...)
}

// sampleStream is a connection's worth of records covering the decoder's
// paths: management records, padding, long pairs, pipelined requests.
func sampleStream(big bool) []byte {
	var s []byte
	var q []byte
	q = AppendPair(q, ValueMaxConns, "")
	q = AppendPair(q, "NOPE", "")
	q = AppendPair(q, ValueMpxsConns, "")
	s = AppendRecord(s, TypeGetValues, 0, q)
	s = AppendRecord(s, 42, 0, nil) // unknown management type

	// Request 1: keep-conn, params split across records with odd padding,
	// a 4-byte name and value length, a body in two records.
	s = AppendBeginRequest(s, 1, RoleResponder, FlagKeepConn)
	var p []byte
	p = AppendPair(p, "SCRIPT_FILENAME", "/srv/www/index.lua")
	p = AppendPair(p, strings.Repeat("N", 130), strings.Repeat("v", 300))
	p = AppendPair(p, "EMPTY", "")
	p = AppendPair(p, "QUERY_STRING", "a=1&b=2")
	s = appendPadded(s, TypeParams, 1, p[:5], 3)
	s = appendPadded(s, TypeParams, 1, p[5:200], 0)
	s = appendPadded(s, TypeParams, 1, p[200:], 255)
	s = AppendRecord(s, TypeParams, 1, nil)
	s = AppendRecord(s, TypeData, 1, []byte("ignored"))
	s = AppendRecord(s, TypeStdin, 9, []byte("other id: ignored"))
	s = appendPadded(s, TypeStdin, 1, []byte("hello "), 7)
	s = AppendRecord(s, TypeStdin, 1, []byte("world"))
	s = AppendRecord(s, TypeStdin, 1, nil)

	// Request 2: a second BEGIN while 2 is active, a long value in
	// records of MaxContentLen; then unknown roles.
	s = AppendBeginRequest(s, 2, RoleResponder, 0)
	s = AppendBeginRequest(s, 3, RoleResponder, FlagKeepConn)
	n := 700
	if big {
		n = 70000
	}
	s = AppendStream(s, TypeParams, 2, AppendPair(nil, "A", strings.Repeat("x", n)))
	s = AppendRecord(s, TypeParams, 2, nil)
	s = AppendRecord(s, TypeStdin, 2, nil)
	s = AppendBeginRequest(s, 4, RoleAuthorizer, 0)
	s = AppendBeginRequest(s, 5, RoleFilter, FlagKeepConn)

	// Request 6: aborted while sending params.
	s = AppendBeginRequest(s, 6, RoleResponder, FlagKeepConn)
	s = AppendRecord(s, TypeParams, 6, AppendPair(nil, "X", "y"))
	s = AppendRecord(s, TypeAbortRequest, 6, nil)
	s = AppendRecord(s, TypeParams, 6, nil)

	// Request 7: finished at EventRequest... by the transcript at STDINEND.
	s = AppendBeginRequest(s, 7, RoleResponder, 0)
	s = AppendRecord(s, TypeParams, 7, nil)
	s = AppendRecord(s, TypeStdin, 7, nil)
	return s
}

const sampleWant = `REPLY 0 close=false 010a0000002305000e01464347495f4d41585f434f4e4e53310f01464347495f4d5058535f434f4e4e53300000000000
REPLY 0 close=false 010b0000000800002a00000000000000
REQUEST 1 keep=true SCRIPT_FILENAME="/srv/www/index.lua" NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN...(130 bytes)="vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv...(300 bytes)" EMPTY="" QUERY_STRING="a=1&b=2"
STDIN 1 "hello "
STDIN 1 "world"
STDINEND 1
REPLY 3 close=false 01030003000800000000000001000000
REQUEST 2 keep=false A="xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...(700 bytes)"
STDINEND 2
REPLY 4 close=true 01030004000800000000000003000000
REPLY 5 close=false 01030005000800000000000003000000
ABORT 6
REQUEST 7 keep=false
STDINEND 7
`

// TestConnSample checks the events of the sample stream read in one piece:
// GET_VALUES answered with the asked known names only, UNKNOWN_TYPE,
// padding, 1- and 4-byte lengths, DATA and other ids ignored, CANT_MPX_CONN,
// UNKNOWN_ROLE (closing without KEEP_CONN), abort.
func TestConnSample(t *testing.T) {
	got, err := transcript(t, Limits{}, sampleStream(false))
	if err != nil {
		t.Fatalf("decoding: %v\n%s", err, got)
	}
	if got != sampleWant {
		t.Errorf("got\n%s\nwant\n%s", got, sampleWant)
	}
}

// TestConnSplitEverywhere cuts the sample stream in two and in three at
// every byte position, and feeds the big sample one byte at a time.
func TestConnSplitEverywhere(t *testing.T) {
	stream := sampleStream(false)
	for i := 0; i <= len(stream); i++ {
		got, err := transcript(t, Limits{}, stream, i)
		if err != nil || got != sampleWant {
			t.Fatalf("cut at %d: err %v\n%s", i, err, got)
		}
	}
	for i := 0; i <= len(stream); i += 7 {
		for j := i; j <= len(stream); j += 13 {
			got, err := transcript(t, Limits{}, stream, i, j)
			if err != nil || got != sampleWant {
				t.Fatalf("cut at %d and %d: err %v\n%s", i, j, err, got)
			}
		}
	}
	big := sampleStream(true)
	want, err := transcript(t, Limits{}, big)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want, "(70000 bytes)") {
		t.Fatalf("big value missing:\n%s", want)
	}
	cuts := make([]int, len(big))
	for i := range cuts {
		cuts[i] = i
	}
	got, err := transcript(t, Limits{}, big, cuts...)
	if err != nil || got != want {
		t.Fatalf("byte by byte: err %v\n%s\nwant\n%s", err, got, want)
	}
}

// TestConnTruncated: every prefix of a valid stream decodes without error
// into a prefix of the events, and reports the bytes of the record cut short.
func TestConnTruncated(t *testing.T) {
	stream := sampleStream(false)
	for i := 0; i < len(stream); i++ {
		got, err := transcript(t, Limits{}, stream[:i])
		if err != nil {
			t.Fatalf("prefix %d: %v", i, err)
		}
		events, _, _ := strings.Cut(got, "TRUNCATED")
		if !strings.HasPrefix(sampleWant, events) {
			t.Fatalf("prefix %d: events\n%s\nare not a prefix of\n%s", i, got, sampleWant)
		}
	}
}
