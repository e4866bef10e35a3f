package protocol

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	b := AppendHeader(nil, TypeStdout, 0xbeef, 0x1234, 7)
	want := Header{Version: Version1, Type: TypeStdout, RequestID: 0xbeef, ContentLength: 0x1234, PaddingLength: 7}
	if h := ParseHeader(b); h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
	if h := ParseHeader(b[:7]); h != (Header{}) {
		t.Fatalf("short header parsed as %+v", h)
	}
}

func TestAppendRecordPadding(t *testing.T) {
	for n := 0; n < 20; n++ {
		b := AppendRecord(nil, TypeStdout, 1, bytes.Repeat([]byte{'x'}, n))
		if len(b)%8 != 0 {
			t.Fatalf("content %d: record of %d bytes", n, len(b))
		}
		h := ParseHeader(b)
		if int(h.ContentLength) != n || h.recordLen() != len(b) {
			t.Fatalf("content %d: header %+v, record %d bytes", n, h, len(b))
		}
	}
}

func TestAppendStream(t *testing.T) {
	if b := AppendStream(nil, TypeStdout, 1, nil); len(b) != 0 {
		t.Fatalf("empty data gave %d bytes", len(b))
	}
	data := bytes.Repeat([]byte("0123456789"), 20000) // 200000 bytes: 4 records
	b := AppendStream(nil, TypeStdout, 3, data)
	var got []byte
	records := 0
	for len(b) > 0 {
		h := ParseHeader(b)
		if h.ContentLength == 0 || h.Type != TypeStdout || h.RequestID != 3 {
			t.Fatalf("bad record %+v", h)
		}
		got = append(got, b[HeaderLen:HeaderLen+int(h.ContentLength)]...)
		b = b[h.recordLen():]
		records++
	}
	if records != 4 || !bytes.Equal(got, data) {
		t.Fatalf("%d records, data equal: %v", records, bytes.Equal(got, data))
	}
}

func TestAppendResponseReadResponse(t *testing.T) {
	stdout := bytes.Repeat([]byte("o"), 100000)
	for _, stderr := range [][]byte{nil, []byte("warning")} {
		b := AppendResponse(nil, 7, stdout, stderr, 42)
		// A record of another request first, as a multiplexing peer could send.
		b = append(AppendRecord(nil, TypeStdout, 8, []byte("other")), b...)
		var out, errOut []byte
		app, proto, err := ReadResponse(newReader(b), 7,
			func(p []byte) { out = append(out, p...) },
			func(p []byte) { errOut = append(errOut, p...) })
		if err != nil || app != 42 || proto != StatusRequestComplete {
			t.Fatalf("got %d %d %v", app, proto, err)
		}
		if !bytes.Equal(out, stdout) || !bytes.Equal(errOut, stderr) {
			t.Fatalf("stdout %d bytes, stderr %q", len(out), errOut)
		}
		hasStderr := bytes.Contains(b, AppendHeader(nil, TypeStderr, 7, 0, 0))
		if hasStderr != (len(stderr) > 0) {
			t.Fatalf("empty STDERR record present: %v", hasStderr)
		}
		// Every truncation is an unexpected EOF.
		for i := 0; i < len(b); i += 997 {
			_, _, err := ReadResponse(newReader(b[:i]), 7, nil, nil)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("truncated at %d: %v", i, err)
			}
		}
	}
}

func TestEncodeRequest(t *testing.T) {
	req := &Request{
		ID:       5,
		KeepConn: true,
		Params:   []Pair{{"A", "1"}, {strings.Repeat("n", 200), strings.Repeat("v", 100000)}},
		Body:     strings.NewReader(strings.Repeat("b", 70000)),
	}
	got, err := transcript(t, Limits{}, EncodeRequest(nil, req))
	if err != nil {
		t.Fatal(err)
	}
	want := "REQUEST 5 keep=true A=\"1\" nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...(200 bytes)=\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv...(100000 bytes)\"\n" +
		"STDIN 5 \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...(65535 bytes)\"\n" +
		"STDIN 5 \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...(4465 bytes)\"\n" +
		"STDINEND 5\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Defaults: id 1, responder, no body.
	got, err = transcript(t, Limits{}, EncodeRequest(nil, &Request{}))
	if err != nil || got != "REQUEST 1 keep=false\nSTDINEND 1\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}
