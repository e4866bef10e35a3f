package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func newReader(b []byte) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(b), 4096)
}

func TestPairLengths(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 255, 65535, 70000} {
		name := strings.Repeat("k", n)
		value := strings.Repeat("v", n/2+1)
		b := AppendPair(nil, name, value)
		if b2 := AppendPairBytes(nil, []byte(name), []byte(value)); !bytes.Equal(b, b2) {
			t.Fatalf("%d: AppendPair and AppendPairBytes differ", n)
		}
		wantHdr := 2
		if n >= 128 {
			wantHdr += 3
		}
		if len(value) >= 128 {
			wantHdr += 3
		}
		if len(b) != wantHdr+len(name)+len(value) {
			t.Fatalf("%d: encoded length %d", n, len(b))
		}
		if n >= 128 && (b[0]&0x80 == 0 || int(b[3]) != n&0xff) {
			t.Fatalf("%d: 4-byte length %x", n, b[:4])
		}
		gn, gv, next, err := Params(b).Next(0)
		if err != nil || string(gn) != name || string(gv) != value || next != len(b) {
			t.Fatalf("%d: decoded %d %d %d %v", n, len(gn), len(gv), next, err)
		}
	}
}

func TestParams(t *testing.T) {
	var b []byte
	b = AppendPair(b, "A", "1")
	b = AppendPair(b, "LONG", strings.Repeat("x", 300))
	b = AppendPair(b, "A", "2")
	b = AppendPair(b, "", "")
	p := Params(b)
	if n, err := p.Count(); n != 4 || err != nil {
		t.Fatalf("Count = %d, %v", n, err)
	}
	if v, ok := p.Lookup("A"); !ok || string(v) != "1" {
		t.Fatalf("Lookup A = %q %v", v, ok)
	}
	if v, ok := p.Lookup("LONG"); !ok || len(v) != 300 {
		t.Fatalf("Lookup LONG = %d bytes %v", len(v), ok)
	}
	if _, ok := p.Lookup("B"); ok {
		t.Fatal("Lookup B found")
	}
	if _, _, _, err := p.Next(len(p)); err != io.EOF {
		t.Fatalf("Next at end: %v", err)
	}
	bounds := map[int]bool{}
	for off := 0; off < len(p); {
		_, _, next, _ := p.Next(off)
		bounds[next] = true
		off = next
	}
	for i := 1; i < len(b); i++ {
		_, err := Params(b[:i]).Count()
		if bounds[i] != (err == nil) {
			t.Fatalf("cut at %d: %v", i, err)
		}
		if err != nil && !errors.Is(err, ErrBadParams) {
			t.Fatalf("cut at %d: %v", i, err)
		}
	}
	if _, ok := Params(b[:5]).Lookup("LONG"); ok {
		t.Fatal("Lookup in malformed params found a value")
	}
}

func TestParamsAllocs(t *testing.T) {
	p := Params(typicalParams())
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := p.Lookup("SCRIPT_FILENAME"); !ok {
			t.Fatal("not found")
		}
		if _, err := p.Count(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}
