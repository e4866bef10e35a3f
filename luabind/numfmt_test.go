package luabind

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestNumberFormat: numbers turn into the strings Lua 5.1's "%.14g"
// gives, whether numfmt.c writes them (integers below 10^14) or glibc
// does; and under PUC Lua numfmt.c is the one liblua calls.
func TestNumberFormat(t *testing.T) {
	st := newState(t)
	want := map[float64]string{
		0: "0", math.Copysign(0, -1): "-0", 1: "1", -1: "-1", 42: "42", 1e13: "10000000000000",
		99999999999999: "99999999999999", -99999999999999: "-99999999999999", 1e14: "1e+14",
		-1e14: "-1e+14", 123456789012346: "1.2345678901235e+14", 1 << 53: "9.007199254741e+15",
		0.5: "0.5", -2.25: "-2.25", 1.0 / 3: "0.33333333333333", 1e-5: "1e-05", 1e300: "1e+300",
		math.Inf(1): "inf", math.Inf(-1): "-inf", math.NaN(): "nan", 52.5: "52.5", 1e100: "1e+100",
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := r.Int64N(2e14) - 1e14
		want[float64(n)] = strconv.FormatInt(n, 10)
	}
	var src strings.Builder
	src.WriteString("local Z = 0\nlocal t = {")
	keys := make([]float64, 0, len(want))
	for x := range want {
		keys = append(keys, x)
		switch {
		case math.IsNaN(x):
			src.WriteString("0/0,")
		case math.IsInf(x, 0):
			src.WriteString(strconv.FormatFloat(x, 'g', -1, 64)[:1] + "1/0,")
		case x == 0 && math.Signbit(x):
			src.WriteString("-Z,") // a literal -0 is folded to 0
		default:
			src.WriteString(strconv.FormatFloat(x, 'g', -1, 64) + ",")
		}
	}
	src.WriteString("}\nfor i = 1, #t do print(t[i] .. '', '\\n', tostring(t[i]), '\\n') end")
	before := numfmtFast()
	out := run(t, st, load(t, st, "fmt", strings.ReplaceAll(src.String(), "+1/0", "1/0")), nil)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2*len(keys) {
		t.Fatalf("%d lines for %d numbers", len(lines), len(keys))
	}
	for i, x := range keys {
		w := want[x]
		if math.IsNaN(x) && (lines[2*i] == "-nan" || lines[2*i] == "nan") {
			continue
		}
		if lines[2*i] != w || lines[2*i+1] != w {
			t.Errorf("%v: got %q and %q, want %q", x, lines[2*i], lines[2*i+1], w)
		}
	}
	if !LuaJIT && numfmtFast()-before < 2000 {
		t.Errorf("numfmt.c wrote %d numbers: liblua does not call its __sprintf_chk", numfmtFast()-before)
	}
}

// BenchmarkConcatNumbers: a page concatenating ten integer ids.
func BenchmarkConcatNumbers(b *testing.B) {
	st := newState(b)
	c := load(b, st, "ids", `local o = {} for i = 1, 10 do o[i] = "<td>" .. (i * 100 + 42) .. "</td>" end`)
	r := request()
	b.ReportAllocs()
	for range b.N {
		if err := st.Run(c, r); err != nil {
			b.Fatal(err)
		}
	}
}
