package protocol

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzConn feeds arbitrary bytes to a Conn, cut into pieces whose sizes
// come from cuts, and acts like a worker on the events. The Conn must not
// panic and must stay within its memory bounds.
func FuzzConn(f *testing.F) {
	f.Add(sampleStream(false), []byte{})
	f.Add(sampleStream(false), []byte{1, 2, 3, 200, 7})
	f.Add(typicalRequest(), []byte{8})
	f.Add(EncodeRequest(nil, &Request{Params: typicalPairs, Body: strings.NewReader("a=1&b=2")}), []byte{0, 3})
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"), []byte{})
	f.Add(beginParams(1, "a", strings.Repeat("x", 3000)), []byte{100})
	f.Add(append(AppendHeader(nil, TypeStdin, 1, MaxContentLen, 255), "short"...), []byte{})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		// A small params limit in half the runs, so the fuzzer reaches it.
		lim := Limits{}
		if len(cuts) > 0 && cuts[0]&1 == 1 {
			lim = Limits{MaxParamsBytes: 2048, MaxParams: 10}
		}
		c := NewConn(lim)
		for len(data) > 0 {
			n := len(data)
			if len(cuts) > 0 {
				n = min(n, int(cuts[0])+1)
				cuts = cuts[1:]
			}
			if stop := fuzzFeed(t, c, data[:n]); stop {
				return
			}
			data = data[n:]
		}
	})
}

// fuzzFeed gives chunk to c and handles its events like a worker; it
// returns true when the Conn reports an error.
func fuzzFeed(t *testing.T, c *Conn, chunk []byte) bool {
	for len(chunk) > 0 {
		buf := c.ReadBuffer()
		checkBounds(t, c)
		if len(buf) < minReadSpace {
			t.Fatalf("ReadBuffer gave %d bytes with %d buffered", len(buf), c.Buffered())
		}
		n := copy(buf, chunk)
		c.Advance(n)
		chunk = chunk[n:]
		for {
			ev, err := c.Next()
			if err != nil {
				return true
			}
			switch ev.Kind {
			case EventNone:
				if c.Buffered() >= maxRecordLen {
					t.Fatalf("%d bytes buffered after EventNone", c.Buffered())
				}
			case EventRequest:
				p := c.Params()
				if _, err := p.Count(); err != nil {
					t.Fatalf("EventRequest with bad params: %v", err)
				}
				p.Lookup("SCRIPT_FILENAME")
			case EventStdin:
				if len(ev.Data) == 0 {
					t.Fatal("empty EventStdin")
				}
			case EventStdinEnd, EventAbort:
				c.FinishRequest()
			case EventReply:
				if len(ev.Data) < HeaderLen || len(ev.Data)%8 != 0 {
					t.Fatalf("reply of %d bytes", len(ev.Data))
				}
			}
			if ev.Kind == EventNone {
				break
			}
		}
	}
	return false
}

// FuzzParams decodes arbitrary name-value blocks; well-formed ones must
// survive re-encoding.
func FuzzParams(f *testing.F) {
	f.Add(typicalParams())
	f.Add(AppendPair(AppendPair(nil, "A", "1"), strings.Repeat("n", 200), strings.Repeat("v", 300)))
	f.Add([]byte{0x80, 0, 0, 1, 0, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{3, 0, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := Params(data)
		count, cerr := p.Count()
		p.Lookup("A")
		var re []byte
		n := 0
		off := 0
		for {
			name, value, next, err := p.Next(off)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if cerr == nil {
					t.Fatalf("Next failed at %d, Count did not", off)
				}
				return
			}
			if next <= off || next > len(p) {
				t.Fatalf("Next from %d to %d", off, next)
			}
			re = AppendPairBytes(re, name, value)
			off = next
			n++
		}
		if cerr != nil || n != count {
			t.Fatalf("Count = %d, %v; Next found %d", count, cerr, n)
		}
		// Canonical re-encoding decodes to the same pairs.
		if len(re) > len(data) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(data), len(re))
		}
		q := Params(re)
		for a, b := 0, 0; a < len(p); {
			n1, v1, na, _ := p.Next(a)
			n2, v2, nb, err := q.Next(b)
			if err != nil || !bytes.Equal(n1, n2) || !bytes.Equal(v1, v2) {
				t.Fatalf("re-encoded pair differs: %v", err)
			}
			a, b = na, nb
		}
	})
}
