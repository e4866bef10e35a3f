package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Response is a complete response read by Client.Do.
type Response struct {
	Stdout, Stderr []byte
	AppStatus      uint32
	ProtocolStatus uint8
}

// Client is one FastCGI connection to an application, used for one request
// at a time. It is not safe for concurrent use.
type Client struct {
	conn net.Conn
	br   *bufio.Reader
	wbuf []byte
}

// clientReadBuf lets ReadResponse hand out whole records in one piece.
const clientReadBuf = 64 << 10

// Dial connects to a FastCGI application ("unix" or "tcp" network).
func Dial(network, address string) (*Client, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, fmt.Errorf("protocol: dial: %w", err)
	}
	return NewClient(c), nil
}

// NewClient returns a Client that talks over c.
func NewClient(c net.Conn) *Client {
	return &Client{conn: c, br: bufio.NewReaderSize(c, clientReadBuf)}
}

// Close closes the connection.
func (c *Client) Close() error {
	return c.conn.Close()
}

// SetDeadline sets the read and write deadline of the connection.
func (c *Client) SetDeadline(t time.Time) error {
	return c.conn.SetDeadline(t)
}

// Do sends req and returns the whole response. A response that refuses the
// request (ProtocolStatus other than StatusRequestComplete) is not an error.
func (c *Client) Do(req *Request) (*Response, error) {
	var out, errOut bytes.Buffer
	app, proto, err := c.Stream(req, &out, &errOut)
	if err != nil {
		return nil, err
	}
	return &Response{Stdout: out.Bytes(), Stderr: errOut.Bytes(), AppStatus: app, ProtocolStatus: proto}, nil
}

// syncWriteMax is the largest request written before reading the response
// rather than concurrently with it: small enough that the application reads
// it in one go and cannot block on it while writing its response.
const syncWriteMax = 4 << 10

// Stream sends req and copies the response's STDOUT and STDERR to stdout
// and stderr (either may be nil) as records arrive. It returns the
// END_REQUEST statuses. The request body is written while the response is
// read, so an application may answer before it has read the whole body.
func (c *Client) Stream(req *Request, stdout, stderr io.Writer) (appStatus uint32, protoStatus uint8, err error) {
	id := req.id()
	c.wbuf = appendRequestHead(c.wbuf[:0], req)
	var werrc chan error
	if req.Body == nil && len(c.wbuf)+HeaderLen <= syncWriteMax {
		c.wbuf = AppendHeader(c.wbuf, TypeStdin, id, 0, 0)
		if _, err := c.conn.Write(c.wbuf); err != nil {
			return 0, 0, fmt.Errorf("protocol: writing request: %w", err)
		}
	} else {
		werrc = make(chan error, 1)
		go func() { werrc <- c.writeBody(req) }()
	}

	var outErr error
	write := func(w io.Writer) func([]byte) {
		if w == nil {
			return nil
		}
		return func(b []byte) {
			if outErr == nil {
				if _, err := w.Write(b); err != nil {
					outErr = fmt.Errorf("protocol: copying response: %w", err)
				}
			}
		}
	}
	appStatus, protoStatus, err = ReadResponse(c.br, id, write(stdout), write(stderr))
	if werrc != nil {
		if err != nil {
			c.conn.Close() // unblock the writer
		}
		if werr := <-werrc; werr != nil && err == nil {
			// The application answered before reading the whole body and
			// closed the connection: the response stands, the connection
			// does not.
			c.conn.Close()
		}
	}
	if err != nil {
		return 0, 0, err
	}
	return appStatus, protoStatus, outErr
}

// writeBody writes the already encoded request head, then the body and the
// empty STDIN record, in writes of about 64 KiB.
func (c *Client) writeBody(req *Request) error {
	id := req.id()
	b := c.wbuf
	if req.Body != nil {
		var err error
		for done := false; !done; {
			b, done, err = appendReaderRecord(b, TypeStdin, id, req.Body)
			if err != nil {
				return fmt.Errorf("protocol: reading request body: %w", err)
			}
			if len(b) >= 64<<10 && !done {
				if _, err := c.conn.Write(b); err != nil {
					return fmt.Errorf("protocol: writing request: %w", err)
				}
				b = b[:0]
			}
		}
	}
	b = AppendHeader(b, TypeStdin, id, 0, 0)
	c.wbuf = b
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("protocol: writing request: %w", err)
	}
	return nil
}

// ReadResponse reads the response to request id from r, calling stdout and
// stderr (either may be nil) with each piece of STDOUT and STDERR content,
// until END_REQUEST. Pieces alias r's buffer and are valid only during the
// call. Records of other requests and management records are skipped.
// ReadResponse does not allocate.
func ReadResponse(r *bufio.Reader, id uint16, stdout, stderr func([]byte)) (appStatus uint32, protoStatus uint8, err error) {
	for {
		h, err := readHeader(r)
		if err != nil {
			return 0, 0, err
		}
		n, pad := int(h.ContentLength), int(h.PaddingLength)
		var sink func([]byte)
		if h.RequestID == id {
			switch h.Type {
			case TypeStdout:
				sink = stdout
			case TypeStderr:
				sink = stderr
			case TypeEndRequest:
				if n < 8 {
					return 0, 0, fmt.Errorf("protocol: END_REQUEST body of %d bytes, want 8", n)
				}
				b, err := r.Peek(8)
				if err != nil {
					return 0, 0, truncated(err)
				}
				appStatus, protoStatus = binary.BigEndian.Uint32(b), b[4]
				if _, err := r.Discard(n + pad); err != nil {
					return 0, 0, truncated(err)
				}
				return appStatus, protoStatus, nil
			}
		}
		for n > 0 {
			k := min(n, r.Size())
			b, err := r.Peek(k)
			if err != nil {
				return 0, 0, truncated(err)
			}
			if sink != nil {
				sink(b)
			}
			r.Discard(k)
			n -= k
		}
		if _, err := r.Discard(pad); err != nil {
			return 0, 0, truncated(err)
		}
	}
}

// readHeader reads and checks one record header.
func readHeader(r *bufio.Reader) (Header, error) {
	b, err := r.Peek(HeaderLen)
	if err != nil {
		return Header{}, truncated(err)
	}
	h := ParseHeader(b)
	r.Discard(HeaderLen)
	if h.Version != Version1 {
		return h, fmt.Errorf("protocol: record with version %d, want %d", h.Version, Version1)
	}
	return h, nil
}

// truncated reports a response cut short.
func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("protocol: reading response: %w", err)
}

// GetValues asks the application for the values of names with
// FCGI_GET_VALUES and returns the answered ones.
func (c *Client) GetValues(names ...string) (map[string]string, error) {
	var content []byte
	for _, n := range names {
		content = AppendPair(content, n, "")
	}
	if len(content) > MaxContentLen {
		return nil, errors.New("protocol: GET_VALUES: too many names")
	}
	c.wbuf = AppendRecord(c.wbuf[:0], TypeGetValues, 0, content)
	if _, err := c.conn.Write(c.wbuf); err != nil {
		return nil, fmt.Errorf("protocol: writing GET_VALUES: %w", err)
	}
	for {
		h, err := readHeader(c.br)
		if err != nil {
			return nil, err
		}
		body := make([]byte, int(h.ContentLength)+int(h.PaddingLength))
		if _, err := io.ReadFull(c.br, body); err != nil {
			return nil, truncated(err)
		}
		body = body[:h.ContentLength]
		if h.RequestID != 0 {
			continue
		}
		switch h.Type {
		case TypeUnknownType:
			return nil, errors.New("protocol: GET_VALUES: application answered UNKNOWN_TYPE")
		case TypeGetValuesResult:
			vals := make(map[string]string)
			p := Params(body)
			for off := 0; off < len(p); {
				name, value, next, err := p.Next(off)
				if err != nil {
					return nil, fmt.Errorf("protocol: GET_VALUES_RESULT: %w", err)
				}
				vals[string(name)] = string(value)
				off = next
			}
			return vals, nil
		}
	}
}
