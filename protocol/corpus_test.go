package protocol

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// connSeeds are the committed seed corpus of FuzzConn: valid and invalid
// streams, each with the sizes of the pieces to cut it into.
func connSeeds() map[string][2][]byte {
	twoRequests := EncodeRequest(nil, &Request{ID: 1, KeepConn: true, Params: []Pair{{"A", "1"}},
		Body: strings.NewReader(strings.Repeat("b", 9000))})
	twoRequests = EncodeRequest(twoRequests, &Request{ID: 2, Params: typicalPairs})
	midAbort := AppendBeginRequest(nil, 1, RoleResponder, FlagKeepConn)
	midAbort = AppendRecord(midAbort, TypeParams, 1, AppendPair(nil, "A", "1"))
	midAbort = AppendRecord(midAbort, TypeAbortRequest, 1, nil)
	midAbort = append(midAbort, typicalRequest()...)
	badPairs := AppendBeginRequest(nil, 1, RoleResponder, 0)
	badPairs = AppendRecord(badPairs, TypeParams, 1, []byte{5, 1, 'a', 'b'})
	badPairs = AppendRecord(badPairs, TypeParams, 1, nil)
	hugeLen := AppendBeginRequest(nil, 1, RoleResponder, 0)
	hugeLen = AppendRecord(hugeLen, TypeParams, 1, []byte{0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 1, 'a'})
	hugeLen = AppendRecord(hugeLen, TypeParams, 1, nil)
	early := AppendBeginRequest(nil, 1, RoleResponder, 0)
	early = AppendRecord(early, TypeStdin, 1, []byte("x"))
	getValues := AppendRecord(nil, TypeGetValues, 0,
		AppendPair(AppendPair(AppendPair(nil, ValueMaxConns, ""), ValueMaxReqs, ""), ValueMpxsConns, ""))
	return map[string][2][]byte{
		"typical":         {typicalRequest(), nil},
		"typical-bytes":   {typicalRequest(), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		"sample":          {sampleStream(false), []byte{6, 250, 17}},
		"two-requests":    {twoRequests, []byte{255, 255, 3}},
		"get-values":      {getValues, nil},
		"unknown-type":    {AppendRecord(nil, 99, 0, []byte("?")), nil},
		"http":            {[]byte("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"), nil},
		"lying-length":    {append(AppendHeader(nil, TypeStdin, 1, MaxContentLen, 255), "short"...), nil},
		"params-limit":    {beginParams(1, "a", strings.Repeat("x", 3000)), []byte{1}},
		"too-many-params": {beginParams(1, "a", "", "b", "", "c", "", "d", "", "e", "", "f", "", "g", "", "h", "", "i", "", "j", "", "k", ""), []byte{3}},
		"bad-pairs":       {badPairs, nil},
		"huge-pair-len":   {hugeLen, nil},
		"stdin-early":     {early, nil},
		"abort":           {midAbort, []byte{20}},
		"short-begin":     {AppendRecord(nil, TypeBeginRequest, 1, []byte{0, 1}), nil},
	}
}

// TestWriteSeedCorpus rewrites testdata/fuzz/FuzzConn and FuzzParams from
// connSeeds when MAGNET_WRITE_CORPUS=1; otherwise it checks they exist.
func TestWriteSeedCorpus(t *testing.T) {
	write := os.Getenv("MAGNET_WRITE_CORPUS") == "1"
	check := func(dir, name string, values ...[]byte) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		}
		path := filepath.Join("testdata", "fuzz", dir, name)
		if write {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("seed missing (run with MAGNET_WRITE_CORPUS=1): %v", err)
		}
	}
	for name, s := range connSeeds() {
		check("FuzzConn", name, s[0], s[1])
	}
	for name, p := range map[string][]byte{
		"typical":   typicalParams(),
		"long":      AppendPair(AppendPair(nil, "A", "1"), strings.Repeat("n", 200), strings.Repeat("v", 300)),
		"non-canon": {0x80, 0, 0, 1, 0, 'a'},
		"huge-len":  {0xff, 0xff, 0xff, 0xff, 0},
		"short":     {3, 0, 'a'},
	} {
		check("FuzzParams", name, p)
	}
}
