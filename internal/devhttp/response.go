package devhttp

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/magnet-fcgi/magnet/protocol"
)

// maxHeader bounds the CGI header block of a response.
const maxHeader = 64 << 10

// response turns the application's STDOUT, a CGI response (RFC 3875
// section 6), into an HTTP response as it arrives: it holds the bytes
// until the header block is complete, then writes the header and copies
// the body, flushing each piece.
type response struct {
	w  http.ResponseWriter
	rc *http.ResponseController

	received int64       // bytes of STDOUT received
	head     []byte      // the header block so far
	parsed   bool        // the header block is complete
	status   int         // from the header block
	header   http.Header // from the header block
	wrote    bool        // the HTTP header was sent
	redirect string      // a local redirect to follow instead
	err      error       // a malformed response
	discard  bool        // drop the rest of STDOUT
	bodySeen bool        // some body bytes arrived
}

func newResponse(w http.ResponseWriter, r *http.Request) *response {
	return &response{w: w, rc: http.NewResponseController(w)}
}

// Write receives a piece of STDOUT.
func (o *response) Write(p []byte) (int, error) {
	n := len(p)
	o.received += int64(n)
	if o.discard || o.err != nil {
		return n, nil
	}
	if !o.parsed {
		o.head = append(o.head, p...)
		end := headerEnd(o.head)
		if end < 0 {
			if len(o.head) > maxHeader {
				o.err = errHeaderTooLong
			}
			return n, nil
		}
		if err := o.parse(o.head[:end]); err != nil {
			o.err = err
			return n, nil
		}
		p = o.head[end:]
		if o.redirect != "" {
			o.discard = true
			return n, nil
		}
	}
	if len(p) == 0 {
		return n, nil
	}
	o.bodySeen = true
	o.writeHeader()
	if _, err := o.w.Write(p); err != nil {
		// The client went away: keep reading the application's answer
		// so that its connection stays usable.
		o.discard = true
		return n, nil
	}
	o.rc.Flush()
	return n, nil
}

// headerEnd returns the index just after the blank line that ends the
// header block, or -1.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i == 0:
			return 1 // a blank first line: no header at all
		case i == 1 && b[0] == '\r':
			return 2
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// parse reads the header block and applies RFC 3875's rules: Status sets
// the status; a Location that is a local path, without Status, is a
// local redirect; any other Location without Status is a 302.
func (o *response) parse(block []byte) error {
	status, header, _, err := protocol.ParseCGI(block)
	if err != nil {
		return err
	}
	o.parsed = true
	o.status, o.header = status, http.Header(header)
	loc := header.Get("Location")
	if loc != "" && strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !hasStatus(block) {
		o.redirect = loc
	}
	return nil
}

// hasStatus reports whether a header block has a Status line.
func hasStatus(block []byte) bool {
	for _, line := range bytes.Split(block, []byte("\n")) {
		if len(line) >= 7 && strings.EqualFold(string(line[:7]), "status:") {
			return true
		}
	}
	return false
}

// Headers that belong to the connection between the front and its
// client, not to the application.
var hopByHop = []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "Te", "Trailer"}

func (o *response) writeHeader() {
	if o.wrote {
		return
	}
	o.wrote = true
	h := o.w.Header()
	for k, v := range o.header {
		h[k] = v
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	// A document response must have a Content-Type (RFC 3875 6.3.1);
	// be lenient with scripts that print a body without one.
	if o.bodySeen && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/html")
	}
	o.w.WriteHeader(o.status)
}

// finish completes a response after END_REQUEST.
func (o *response) finish() error {
	switch {
	case o.err != nil:
		o.fail(http.StatusBadGateway)
		return o.err
	case !o.parsed:
		if o.received == 0 {
			o.fail(http.StatusBadGateway)
			return fmt.Errorf("devhttp: empty response")
		}
		o.fail(http.StatusBadGateway)
		return fmt.Errorf("devhttp: CGI header block not terminated by a blank line")
	}
	o.writeHeader()
	return nil
}

// fail answers with status when nothing was sent yet; otherwise it aborts
// the HTTP response, so that the client sees it cut short rather than
// complete.
func (o *response) fail(status int) {
	if o.wrote {
		panic(http.ErrAbortHandler)
	}
	o.wrote = true
	http.Error(o.w, fmt.Sprintf("%d %s", status, http.StatusText(status)), status)
}

// lines logs the application's FCGI_STDERR, one record per line.
type lines struct {
	log    *slog.Logger
	script string
	buf    []byte
	n      int64 // bytes received
}

func (l *lines) Write(p []byte) (int, error) {
	l.n += int64(len(p))
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 16<<10 {
		l.flush()
	}
	return len(p), nil
}

func (l *lines) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) > 0 {
		l.log.Warn("FCGI_STDERR", "script", l.script, "line", string(line))
	}
}

func (l *lines) flush() {
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
}
