package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "4096": 4096, "512K": 512 << 10, "128M": 128 << 20, "128m": 128 << 20,
		"1G": 1 << 30, "1GiB": 1 << 30, "2MB": 2 << 20, " 3T ": 3 << 40, "7b": 7,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1.5G", "12X", "1KK", "99999999999T"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
}
