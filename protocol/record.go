package protocol

import "encoding/binary"

// Protocol constants from the FastCGI 1.0 specification.
const (
	// Version1 is the only FastCGI protocol version.
	Version1 = 1

	// Record types.
	TypeBeginRequest    = 1
	TypeAbortRequest    = 2
	TypeEndRequest      = 3
	TypeParams          = 4
	TypeStdin           = 5
	TypeStdout          = 6
	TypeStderr          = 7
	TypeData            = 8
	TypeGetValues       = 9
	TypeGetValuesResult = 10
	TypeUnknownType     = 11

	// Roles in FCGI_BEGIN_REQUEST.
	RoleResponder  = 1
	RoleAuthorizer = 2
	RoleFilter     = 3

	// FlagKeepConn asks the application to keep the connection open after the request.
	FlagKeepConn = 1

	// Protocol status values in FCGI_END_REQUEST.
	StatusRequestComplete = 0
	StatusCantMpxConn     = 1
	StatusOverloaded      = 2
	StatusUnknownRole     = 3

	// HeaderLen is the size of a record header.
	HeaderLen = 8
	// MaxContentLen is the largest content one record can carry.
	MaxContentLen = 65535
)

// Names of the variables answered in FCGI_GET_VALUES_RESULT.
const (
	ValueMaxConns  = "FCGI_MAX_CONNS"
	ValueMaxReqs   = "FCGI_MAX_REQS"
	ValueMpxsConns = "FCGI_MPXS_CONNS"
)

// maxRecordLen is the size of the largest possible record.
const maxRecordLen = HeaderLen + MaxContentLen + 255

// Header is a decoded FastCGI record header.
type Header struct {
	Version       uint8
	Type          uint8
	RequestID     uint16
	ContentLength uint16
	PaddingLength uint8
}

// ParseHeader decodes the record header at the start of b.
// It returns the zero Header (an invalid version) when b is shorter than HeaderLen.
func ParseHeader(b []byte) Header {
	if len(b) < HeaderLen {
		return Header{}
	}
	return Header{
		Version:       b[0],
		Type:          b[1],
		RequestID:     binary.BigEndian.Uint16(b[2:]),
		ContentLength: binary.BigEndian.Uint16(b[4:]),
		PaddingLength: b[6],
	}
}

// recordLen returns the length of the whole record: header, content and padding.
func (h Header) recordLen() int {
	return HeaderLen + int(h.ContentLength) + int(h.PaddingLength)
}

// AppendHeader appends a version 1 record header to dst.
// contentLen must be in [0, MaxContentLen] and padLen in [0, 255].
func AppendHeader(dst []byte, typ uint8, id uint16, contentLen, padLen int) []byte {
	return append(dst, Version1, typ, byte(id>>8), byte(id),
		byte(contentLen>>8), byte(contentLen), byte(padLen), 0)
}

// padLen returns the padding that brings n up to a multiple of 8.
func padLen(n int) int {
	return -n & 7
}

var zeros [8]byte

// AppendRecord appends one record carrying content, padded to a multiple of 8 bytes.
// It panics if content is longer than MaxContentLen; use AppendStream for longer data.
func AppendRecord(dst []byte, typ uint8, id uint16, content []byte) []byte {
	if len(content) > MaxContentLen {
		panic("protocol: record content longer than MaxContentLen")
	}
	pad := padLen(len(content))
	dst = AppendHeader(dst, typ, id, len(content), pad)
	dst = append(dst, content...)
	return append(dst, zeros[:pad]...)
}

// AppendStream appends data as a sequence of records of at most MaxContentLen
// bytes each. It does not append the empty record that ends a stream, and
// appends nothing when data is empty.
func AppendStream(dst []byte, typ uint8, id uint16, data []byte) []byte {
	for len(data) > 0 {
		n := min(len(data), MaxContentLen)
		dst = AppendRecord(dst, typ, id, data[:n])
		data = data[n:]
	}
	return dst
}

// AppendBeginRequest appends an FCGI_BEGIN_REQUEST record.
func AppendBeginRequest(dst []byte, id uint16, role uint16, flags uint8) []byte {
	dst = AppendHeader(dst, TypeBeginRequest, id, 8, 0)
	return append(dst, byte(role>>8), byte(role), flags, 0, 0, 0, 0, 0)
}

// AppendEndRequest appends an FCGI_END_REQUEST record.
func AppendEndRequest(dst []byte, id uint16, appStatus uint32, protoStatus uint8) []byte {
	dst = AppendHeader(dst, TypeEndRequest, id, 8, 0)
	dst = binary.BigEndian.AppendUint32(dst, appStatus)
	return append(dst, protoStatus, 0, 0, 0)
}

// AppendUnknownType appends an FCGI_UNKNOWN_TYPE record answering a
// management record of type typ.
func AppendUnknownType(dst []byte, typ uint8) []byte {
	dst = AppendHeader(dst, TypeUnknownType, 0, 8, 0)
	return append(dst, typ, 0, 0, 0, 0, 0, 0, 0)
}

// AppendResponse appends a complete response to request id: STDOUT records
// for stdout (split as needed) and the empty STDOUT record, then, only if
// stderr is not empty, STDERR records and the empty STDERR record, and last
// FCGI_END_REQUEST with appStatus and FCGI_REQUEST_COMPLETE.
func AppendResponse(dst []byte, id uint16, stdout, stderr []byte, appStatus uint32) []byte {
	dst = AppendStream(dst, TypeStdout, id, stdout)
	dst = AppendHeader(dst, TypeStdout, id, 0, 0)
	if len(stderr) > 0 {
		dst = AppendStream(dst, TypeStderr, id, stderr)
		dst = AppendHeader(dst, TypeStderr, id, 0, 0)
	}
	return AppendEndRequest(dst, id, appStatus, StatusRequestComplete)
}
