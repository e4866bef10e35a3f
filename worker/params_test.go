package worker

import (
	"bytes"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/protocol"
)

// TestIndexParams checks the worker's in-line index against
// protocol.Params.Next, on short and long pairs and on malformed tails.
func TestIndexParams(t *testing.T) {
	var p []byte
	p = protocol.AppendPair(p, "SCRIPT_FILENAME", "/srv/a.lua")
	p = protocol.AppendPair(p, "EMPTY", "")
	p = protocol.AppendPair(p, strings.Repeat("N", 200), strings.Repeat("v", 300))
	p = protocol.AppendPair(p, "QUERY_STRING", "a=1")
	cases := [][]byte{p, nil, p[:1], p[:len(p)-1], append(append([]byte{}, p...), 0x85), append(append([]byte{}, p...), 3, 9, 'a')}
	for n, c := range cases {
		var want []uint32
		for off := 0; off < len(c); {
			name, value, next, err := protocol.Params(c).Next(off)
			if err != nil {
				break
			}
			no := next - len(name) - len(value)
			want = append(want, uint32(no), uint32(len(name)), uint32(no+len(name)), uint32(len(value)))
			off = next
		}
		got := indexParams(nil, c)
		if len(got) != len(want) {
			t.Fatalf("case %d: index %v, want %v", n, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("case %d: index %v, want %v", n, got, want)
			}
		}
		for _, name := range []string{"SCRIPT_FILENAME", "EMPTY", strings.Repeat("N", 200), "QUERY_STRING", "MISSING", "SCRIPT"} {
			v, ok := protocol.Params(c).Lookup(name)
			if g := param(c, got, name); !bytes.Equal(g, v) || (g != nil) != ok {
				t.Errorf("case %d: param(%q) = %q, want %q (found %v)", n, name, g, v, ok)
			}
		}
	}
}
