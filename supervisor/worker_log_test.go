package supervisor

import (
	"reflect"
	"testing"
)

func TestSplitAttrs(t *testing.T) {
	cases := []struct {
		line  string
		msg   string
		attrs []any
	}{
		{`msg="stopping gracefully" pid=12 signal=terminated`, "stopping gracefully", []any{"signal", "terminated"}},
		{`msg=serving pid=3 listen="fd 0"`, "serving", []any{"listen", "fd 0"}},
		{`msg="script failed" script=/a.lua err="x \"y\""`, "script failed", []any{"script", "/a.lua", "err", `x "y"`}},
		{`plain text from a program`, `plain text from a program`, nil},
	}
	for _, tc := range cases {
		msg, attrs := splitAttrs(tc.line)
		if msg != tc.msg || !reflect.DeepEqual(attrs, tc.attrs) {
			t.Errorf("%q: got %q %v", tc.line, msg, attrs)
		}
	}
}
