package supervisor

import "testing"

func TestParseLine(t *testing.T) {
	for _, tt := range []struct {
		in    string
		level string
		out   string
	}{
		{`time=2026-11-27T00:40:01.016Z level=WARN msg=serving pid=1`, "WARN", `msg=serving pid=1`},
		{`time=2026-11-27T00:40:01.016Z level=ERROR msg="a b"`, "ERROR", `msg="a b"`},
		{`PHP Warning: something`, "INFO", `PHP Warning: something`},
		{`time=x level=LOUD msg=m`, "INFO", `time=x level=LOUD msg=m`},
	} {
		level, out := parseLine(tt.in)
		if level.String() != tt.level || out != tt.out {
			t.Errorf("parseLine(%q) = %v, %q; want %s, %q", tt.in, level, out, tt.level, tt.out)
		}
	}
}
