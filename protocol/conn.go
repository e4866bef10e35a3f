package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Default limits applied by NewConn to zero (or negative) Limits fields.
const (
	DefaultMaxParamsBytes = 256 << 10 // 256 KiB of PARAMS per request
	DefaultMaxParams      = 1000      // name-value pairs per request
	DefaultMaxConns       = 1         // FCGI_MAX_CONNS: a worker serves one connection at a time
	DefaultMaxReqs        = 1         // FCGI_MAX_REQS: and one request at a time
)

// Limits bound what one connection may make the server hold.
// A zero or negative field takes its Default value.
type Limits struct {
	// MaxParamsBytes bounds the total PARAMS content of one request
	// (default DefaultMaxParamsBytes, 256 KiB).
	MaxParamsBytes int
	// MaxParams bounds the number of name-value pairs of one request
	// (default DefaultMaxParams, 1000).
	MaxParams int
	// MaxConns and MaxReqs are reported in FCGI_GET_VALUES_RESULT as
	// FCGI_MAX_CONNS and FCGI_MAX_REQS (default 1 each).
	// FCGI_MPXS_CONNS is always reported as 0.
	MaxConns, MaxReqs int
}

func (l Limits) withDefaults() Limits {
	if l.MaxParamsBytes <= 0 {
		l.MaxParamsBytes = DefaultMaxParamsBytes
	}
	if l.MaxParams <= 0 {
		l.MaxParams = DefaultMaxParams
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxReqs <= 0 {
		l.MaxReqs = DefaultMaxReqs
	}
	return l
}

// Read buffer sizes. The buffer never needs to hold more than one
// incomplete record plus the free space ReadBuffer promises.
const (
	minReadSpace = 4 << 10
	initBufLen   = 8 << 10
	maxBufLen    = 72 << 10 // >= maxRecordLen + minReadSpace
	initParams   = 4 << 10
)

// EventKind says what a call to Conn.Next found.
type EventKind uint8

// Event kinds returned by Conn.Next.
const (
	// EventNone: no complete record is buffered; read more.
	EventNone EventKind = iota
	// EventRequest: BEGIN_REQUEST (role RESPONDER) and the complete PARAMS
	// stream have arrived; Conn.Params holds them. STDIN may follow.
	EventRequest
	// EventStdin: Data is a chunk of the current request's body.
	EventStdin
	// EventStdinEnd: the empty STDIN record ended the body.
	EventStdinEnd
	// EventAbort: FCGI_ABORT_REQUEST for the current request, which may come
	// before or after EventRequest. The caller answers with END_REQUEST and
	// calls FinishRequest.
	EventAbort
	// EventReply: Data holds complete records to write back as they are.
	// If Close is set the caller closes the connection once they are written.
	EventReply
)

var kindNames = [...]string{"EventNone", "EventRequest", "EventStdin", "EventStdinEnd", "EventAbort", "EventReply"}

// String returns the name of the kind.
func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one thing Conn.Next found in the stream.
// Data aliases internal buffers and is valid until the next call to
// Next, ReadBuffer or Reset.
type Event struct {
	Kind      EventKind
	RequestID uint16
	Data      []byte
	// Close is set on an EventReply that ends a connection: an END_REQUEST
	// refusing a request that did not ask for FCGI_KEEP_CONN.
	Close bool
}

// ErrLimit reports a request that exceeds the connection's Limits.
var ErrLimit = errors.New("protocol: limit exceeded")

// Conn decodes the server side of one FastCGI connection.
//
// The caller owns the socket: it reads into ReadBuffer(), calls Advance(n),
// then calls Next() until it returns EventNone. Slices in events alias
// internal buffers and are valid until the next call to Next, ReadBuffer or
// Reset. Params() stays valid from EventRequest until FinishRequest.
//
// Management records (FCGI_GET_VALUES, unknown types), refused requests and
// aborts may arrive at any time, also while the caller reads a request's
// body: it writes each EventReply back as it comes.
//
// A Conn serves one request at a time (FCGI_MPXS_CONNS is 0). Whatever the
// peer sends, it holds at most Limits.MaxParamsBytes of params plus a
// 72 KiB read buffer. Once its buffers have grown to fit the traffic, Next
// does not allocate. Create Conns with NewConn.
type Conn struct {
	lim    Limits
	buf    []byte // received bytes; buf[r:w] is not yet decoded
	r, w   int
	params []byte // PARAMS of the current request
	reply  []byte // records of the last EventReply
	err    error  // sticky decoding error

	active     bool // a request has begun and is not finished
	id         uint16
	keepConn   bool
	paramsDone bool
	stdinDone  bool
	skip       bool // the current request went over a limit: drop its records
}

// NewConn returns a Conn that enforces lim (zero fields take their defaults).
func NewConn(lim Limits) *Conn {
	return &Conn{
		lim:    lim.withDefaults(),
		buf:    make([]byte, initBufLen),
		params: make([]byte, 0, initParams),
		reply:  make([]byte, 0, 64),
	}
}

// Reset makes c ready for a new connection, keeping its buffers.
func (c *Conn) Reset() {
	c.r, c.w = 0, 0
	c.params = c.params[:0]
	c.reply = c.reply[:0]
	c.err = nil
	c.active = false
	c.id = 0
	c.keepConn = false
	c.paramsDone = false
	c.stdinDone = false
	c.skip = false
}

// ReadBuffer returns free space to read into; it is at least 4 KiB long
// as long as the caller calls Next until EventNone before reading again.
// The buffer is reused, compacted when needed and grown only as far as the
// record being received requires, never beyond 72 KiB. A caller that reads
// again without draining Next may get a shorter, even empty, slice.
func (c *Conn) ReadBuffer() []byte {
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	need := minReadSpace
	if c.w-c.r >= HeaderLen {
		h := ParseHeader(c.buf[c.r:c.w])
		if rest := h.recordLen() - (c.w - c.r); rest > need {
			need = rest
		}
	}
	if len(c.buf)-c.w >= need {
		return c.buf[c.w:]
	}
	if c.r > 0 {
		copy(c.buf, c.buf[c.r:c.w])
		c.w -= c.r
		c.r = 0
	}
	if len(c.buf)-c.w < need && len(c.buf) < maxBufLen {
		n := min(max(2*len(c.buf), c.w+need), maxBufLen)
		nb := make([]byte, n)
		copy(nb, c.buf[:c.w])
		c.buf = nb
	}
	return c.buf[c.w:]
}

// Advance records that n bytes were read into the slice ReadBuffer returned.
// It panics if n is negative or larger than that slice.
func (c *Conn) Advance(n int) {
	if n < 0 || n > len(c.buf)-c.w {
		panic("protocol: Conn.Advance count out of range")
	}
	c.w += n
}

// Buffered returns the number of bytes received but not yet decoded.
// A connection that ends with Buffered() > 0 ended inside a record.
func (c *Conn) Buffered() int {
	return c.w - c.r
}

// Params returns the params of the current request. It is valid from
// EventRequest until FinishRequest, and nil outside that span.
func (c *Conn) Params() Params {
	if !c.active || !c.paramsDone || c.skip {
		return nil
	}
	return Params(c.params)
}

// KeepConn reports whether the current (or last) request set
// FCGI_KEEP_CONN: if not, the caller closes the connection after the
// response.
func (c *Conn) KeepConn() bool {
	return c.keepConn
}

// RequestID returns the id of the current request.
func (c *Conn) RequestID() uint16 {
	return c.id
}

// InRequest reports whether a request has begun (BEGIN_REQUEST) and is
// not finished yet.
func (c *Conn) InRequest() bool {
	return c.active
}

// FinishRequest ends the current request once its response is written.
// STDIN of that request still to come is skipped by later calls to Next.
func (c *Conn) FinishRequest() {
	c.active = false
	c.paramsDone = false
	c.stdinDone = false
	c.skip = false
}

// SkipRequest recovers from an error wrapping ErrLimit, so that the
// over-limit request can be answered instead of the connection dropped:
// the error is cleared, and the rest of the request's PARAMS and STDIN are
// dropped as they arrive. The caller answers request RequestID, calls Next
// until EventStdinEnd or EventAbort (the peer is done sending it), then
// calls FinishRequest. SkipRequest reports false, and changes nothing,
// after any other error.
func (c *Conn) SkipRequest() bool {
	if c.err == nil || !errors.Is(c.err, ErrLimit) {
		return false
	}
	c.err = nil
	c.active = true
	c.skip = true
	c.params = c.params[:0]
	return true
}

// Next decodes the buffered bytes until it finds an event, or returns
// EventNone when it needs more bytes. An error means the stream is
// malformed or exceeds the limits; the caller closes the connection.
// Once Next has returned an error it keeps returning it until Reset (or,
// for a limit error, SkipRequest).
func (c *Conn) Next() (Event, error) {
	if c.err != nil {
		return Event{}, c.err
	}
	for c.w-c.r >= HeaderLen {
		h := ParseHeader(c.buf[c.r:c.w])
		if h.Version != Version1 {
			return c.fail(fmt.Errorf("protocol: record with version %d, want %d", h.Version, Version1))
		}
		n := h.recordLen()
		if c.w-c.r < n {
			break
		}
		start := c.r + HeaderLen
		content := c.buf[start : start+int(h.ContentLength) : start+int(h.ContentLength)]
		c.r += n
		ev, err := c.record(h, content)
		if err != nil {
			return c.fail(err)
		}
		if ev.Kind != EventNone {
			return ev, nil
		}
	}
	return Event{}, nil
}

func (c *Conn) fail(err error) (Event, error) {
	c.err = err
	c.active = false
	return Event{}, err
}

// record handles one complete record.
func (c *Conn) record(h Header, content []byte) (Event, error) {
	id := h.RequestID
	switch {
	case id == 0:
		return c.management(h.Type, content)
	case h.Type == TypeBeginRequest:
		return c.begin(id, content)
	case !c.active || id != c.id:
		return Event{}, nil // not the current request: ignore
	}
	switch h.Type {
	case TypeAbortRequest:
		return Event{Kind: EventAbort, RequestID: id}, nil
	case TypeParams:
		if c.skip {
			c.paramsDone = c.paramsDone || len(content) == 0
			return Event{}, nil
		}
		return c.addParams(content)
	case TypeStdin:
		if !c.paramsDone {
			return Event{}, fmt.Errorf("protocol: request %d: STDIN before the end of PARAMS", id)
		}
		if c.stdinDone {
			return Event{}, nil
		}
		if len(content) == 0 {
			c.stdinDone = true
			return Event{Kind: EventStdinEnd, RequestID: id}, nil
		}
		if c.skip {
			return Event{}, nil
		}
		return Event{Kind: EventStdin, RequestID: id, Data: content}, nil
	}
	return Event{}, nil // DATA and types the application never receives
}

// begin handles FCGI_BEGIN_REQUEST.
func (c *Conn) begin(id uint16, content []byte) (Event, error) {
	if len(content) < 8 {
		return Event{}, fmt.Errorf("protocol: request %d: BEGIN_REQUEST body of %d bytes, want 8", id, len(content))
	}
	role := binary.BigEndian.Uint16(content)
	keep := content[2]&FlagKeepConn != 0
	if c.active {
		if id == c.id {
			return Event{}, fmt.Errorf("protocol: request %d: BEGIN_REQUEST for an active request", id)
		}
		c.reply = AppendEndRequest(c.reply[:0], id, 0, StatusCantMpxConn)
		return Event{Kind: EventReply, RequestID: id, Data: c.reply}, nil
	}
	if role != RoleResponder {
		c.reply = AppendEndRequest(c.reply[:0], id, 0, StatusUnknownRole)
		return Event{Kind: EventReply, RequestID: id, Data: c.reply, Close: !keep}, nil
	}
	c.active = true
	c.id = id
	c.keepConn = keep
	c.paramsDone = false
	c.stdinDone = false
	c.skip = false
	c.params = c.params[:0]
	return Event{}, nil
}

// addParams handles a PARAMS record of the current request.
func (c *Conn) addParams(content []byte) (Event, error) {
	if c.paramsDone {
		return Event{}, nil // PARAMS after the end of PARAMS: ignore
	}
	if len(content) == 0 {
		n, err := Params(c.params).Count()
		if err != nil {
			return Event{}, fmt.Errorf("protocol: request %d: PARAMS: %w", c.id, err)
		}
		if n > c.lim.MaxParams {
			c.paramsDone = true // for SkipRequest: the end of PARAMS was seen
			return Event{}, fmt.Errorf("protocol: request %d: more than %d params: %w", c.id, c.lim.MaxParams, ErrLimit)
		}
		c.paramsDone = true
		return Event{Kind: EventRequest, RequestID: c.id}, nil
	}
	need := len(c.params) + len(content)
	if need > c.lim.MaxParamsBytes {
		return Event{}, fmt.Errorf("protocol: request %d: PARAMS longer than %d bytes: %w", c.id, c.lim.MaxParamsBytes, ErrLimit)
	}
	if need > cap(c.params) {
		nb := make([]byte, len(c.params), min(max(2*cap(c.params), need), c.lim.MaxParamsBytes))
		copy(nb, c.params)
		c.params = nb
	}
	c.params = append(c.params, content...)
	return Event{}, nil
}

// management handles a record with request id 0.
func (c *Conn) management(typ uint8, content []byte) (Event, error) {
	if typ != TypeGetValues {
		c.reply = AppendUnknownType(c.reply[:0], typ)
		return Event{Kind: EventReply, Data: c.reply}, nil
	}
	// Answer each known name once, whatever the peer repeats.
	var seen [3]bool
	var num [20]byte
	b := append(c.reply[:0], zeros[:HeaderLen]...)
	p := Params(content)
	for off := 0; off < len(p); {
		name, _, next, err := p.Next(off)
		if err != nil {
			return Event{}, fmt.Errorf("protocol: GET_VALUES: %w", err)
		}
		off = next
		var v []byte
		var i int
		switch string(name) {
		case ValueMaxConns:
			i, v = 0, strconv.AppendInt(num[:0], int64(c.lim.MaxConns), 10)
		case ValueMaxReqs:
			i, v = 1, strconv.AppendInt(num[:0], int64(c.lim.MaxReqs), 10)
		case ValueMpxsConns:
			i, v = 2, append(num[:0], '0')
		default:
			continue
		}
		if seen[i] {
			continue
		}
		seen[i] = true
		b = AppendPairBytes(b, name, v)
	}
	n := len(b) - HeaderLen
	pad := padLen(n)
	AppendHeader(b[:0], TypeGetValuesResult, 0, n, pad)
	c.reply = append(b, zeros[:pad]...)
	return Event{Kind: EventReply, Data: c.reply}, nil
}
