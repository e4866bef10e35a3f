package protocol

import (
	"errors"
	"io"
)

// ErrBadParams reports a name-value block whose lengths do not fit its bytes.
var ErrBadParams = errors.New("protocol: malformed name-value pairs")

// Params is a complete encoded name-value block: the concatenated contents
// of a PARAMS (or GET_VALUES) stream. Its methods decode it in place,
// without allocating.
type Params []byte

// appendLen appends a pair length: one byte below 128, else four bytes
// with the high bit set.
func appendLen(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return append(dst, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
}

// pairHeaderLen returns the size of the two length fields of a pair.
func pairHeaderLen(nameLen, valueLen int) int {
	n := 2
	if nameLen >= 128 {
		n += 3
	}
	if valueLen >= 128 {
		n += 3
	}
	return n
}

// AppendPair appends one name-value pair, with 1-byte lengths for lengths
// below 128 and 4-byte lengths otherwise.
func AppendPair(dst []byte, name, value string) []byte {
	dst = appendLen(dst, len(name))
	dst = appendLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

// AppendPairBytes is AppendPair for byte slices.
func AppendPairBytes(dst []byte, name, value []byte) []byte {
	dst = appendLen(dst, len(name))
	dst = appendLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

// readLen decodes a pair length at p[off:].
func (p Params) readLen(off int) (n, next int, ok bool) {
	if off >= len(p) {
		return 0, off, false
	}
	b := p[off]
	if b < 0x80 {
		return int(b), off + 1, true
	}
	if len(p)-off < 4 {
		return 0, off, false
	}
	n = int(b&0x7f)<<24 | int(p[off+1])<<16 | int(p[off+2])<<8 | int(p[off+3])
	return n, off + 4, true
}

// Next decodes the pair starting at offset off and returns it with the
// offset of the following pair; next == len(p) after the last pair.
// name and value alias p. Next returns io.EOF when off >= len(p) and
// ErrBadParams when the pair does not fit.
func (p Params) Next(off int) (name, value []byte, next int, err error) {
	if off < 0 || off >= len(p) {
		return nil, nil, off, io.EOF
	}
	nlen, i, ok := p.readLen(off)
	if !ok {
		return nil, nil, off, ErrBadParams
	}
	vlen, i, ok := p.readLen(i)
	if !ok || nlen > len(p)-i || vlen > len(p)-i-nlen {
		return nil, nil, off, ErrBadParams
	}
	name = p[i : i+nlen : i+nlen]
	i += nlen
	value = p[i : i+vlen : i+vlen]
	return name, value, i + vlen, nil
}

// Lookup returns the value of the first pair named name.
// It stops at the first malformed pair.
func (p Params) Lookup(name string) ([]byte, bool) {
	for off := 0; off < len(p); {
		n, v, next, err := p.Next(off)
		if err != nil {
			return nil, false
		}
		if string(n) == name {
			return v, true
		}
		off = next
	}
	return nil, false
}

// Count returns the number of pairs in p, or ErrBadParams if p is malformed.
func (p Params) Count() (int, error) {
	n := 0
	for off := 0; off < len(p); n++ {
		_, _, next, err := p.Next(off)
		if err != nil {
			return n, err
		}
		off = next
	}
	return n, nil
}
