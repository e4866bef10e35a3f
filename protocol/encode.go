package protocol

import (
	"errors"
	"io"
	"slices"
)

// Pair is one name-value pair of a request's params.
type Pair struct{ Name, Value string }

// Request is a request a Client sends.
type Request struct {
	ID       uint16 // request id; 0 means 1
	Role     uint16 // 0 means RoleResponder
	KeepConn bool   // set FCGI_KEEP_CONN
	Params   []Pair
	Body     io.Reader // STDIN; nil means empty
}

func (r *Request) id() uint16 {
	if r.ID == 0 {
		return 1
	}
	return r.ID
}

func (r *Request) role() uint16 {
	if r.Role == 0 {
		return RoleResponder
	}
	return r.Role
}

// streamWriter appends a stream of known total length as records,
// filling each record up to MaxContentLen.
type streamWriter struct {
	dst  []byte
	typ  uint8
	id   uint16
	left int // bytes of the stream not yet written
	room int // bytes left in the current record
	pad  int // padding of the current record
}

func (w *streamWriter) open() {
	if w.room == 0 {
		n := min(w.left, MaxContentLen)
		w.pad = padLen(n)
		w.dst = AppendHeader(w.dst, w.typ, w.id, n, w.pad)
		w.room = n
	}
}

func (w *streamWriter) advance(k int) {
	w.room -= k
	w.left -= k
	if w.room == 0 {
		w.dst = append(w.dst, zeros[:w.pad]...)
	}
}

func (w *streamWriter) write(b []byte) {
	for len(b) > 0 {
		w.open()
		k := min(len(b), w.room)
		w.dst = append(w.dst, b[:k]...)
		b = b[k:]
		w.advance(k)
	}
}

func (w *streamWriter) writeString(s string) {
	for len(s) > 0 {
		w.open()
		k := min(len(s), w.room)
		w.dst = append(w.dst, s[:k]...)
		s = s[k:]
		w.advance(k)
	}
}

// AppendParams appends pairs as a PARAMS stream for request id, including
// the empty PARAMS record that ends it. Pairs may span records.
func AppendParams(dst []byte, id uint16, pairs []Pair) []byte {
	total := 0
	for _, p := range pairs {
		total += pairHeaderLen(len(p.Name), len(p.Value)) + len(p.Name) + len(p.Value)
	}
	w := streamWriter{dst: dst, typ: TypeParams, id: id, left: total}
	var lens [8]byte
	for _, p := range pairs {
		l := appendLen(appendLen(lens[:0], len(p.Name)), len(p.Value))
		w.write(l)
		w.writeString(p.Name)
		w.writeString(p.Value)
	}
	return AppendHeader(w.dst, TypeParams, id, 0, 0)
}

// appendRequestHead appends BEGIN_REQUEST and the whole PARAMS stream.
func appendRequestHead(dst []byte, req *Request) []byte {
	var flags uint8
	if req.KeepConn {
		flags = FlagKeepConn
	}
	dst = AppendBeginRequest(dst, req.id(), req.role(), flags)
	return AppendParams(dst, req.id(), req.Params)
}

// appendReaderRecord reads up to MaxContentLen bytes from r and appends them
// as one record. done is set once r is exhausted (io.EOF) or failed.
func appendReaderRecord(dst []byte, typ uint8, id uint16, r io.Reader) (out []byte, done bool, err error) {
	dst = slices.Grow(dst, maxRecordLen)
	start := len(dst)
	body := dst[start+HeaderLen : start+HeaderLen+MaxContentLen]
	n, err := io.ReadFull(r, body)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		done, err = true, nil
	} else if err != nil {
		done = true
	}
	if n == 0 {
		return dst, done, err
	}
	pad := padLen(n)
	AppendHeader(dst[start:start], typ, id, n, pad)
	dst = dst[:start+HeaderLen+n]
	return append(dst, zeros[:pad]...), done, err
}

// EncodeRequest appends the whole request to dst: BEGIN_REQUEST, the PARAMS
// records and the empty PARAMS record, STDIN records read from req.Body and
// the empty STDIN record. It is meant for load generators that encode a
// request once and send it many times; it does not allocate when dst has
// room. A Body read error ends the body early.
func EncodeRequest(dst []byte, req *Request) []byte {
	dst = appendRequestHead(dst, req)
	if req.Body != nil {
		for done := false; !done; {
			dst, done, _ = appendReaderRecord(dst, TypeStdin, req.id(), req.Body)
		}
	}
	return AppendHeader(dst, TypeStdin, req.id(), 0, 0)
}
