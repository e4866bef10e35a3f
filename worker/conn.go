package worker

import (
	"errors"
	"io"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/protocol"
	"github.com/magnet-fcgi/magnet/scripts"
)

// conn is one FastCGI connection held by the worker.
type conn struct {
	fd         int
	pc         *protocol.Conn
	closed     bool
	timeoutSet bool // SO_RCVTIMEO is set for sole-connection mode
	lingering  bool // answered; dropping the rest of the body before closing
	served     int  // requests answered on this connection

	// for the sweeper (timeouts.go)
	seq     uint32        // requests finished, answered or aborted
	seenKey uint64        // seq and phase the last sweep saw
	seenAt  time.Duration // when a sweep first saw seenKey
}

// serveConn reads what the socket has and answers every complete request.
func (s *Server) serveConn(c *conn) {
	s.last = c
	if !s.fill(c) {
		return
	}
	s.process(c)
}

// fill reads once from c; false means the connection is gone or has
// nothing yet.
func (s *Server) fill(c *conn) bool {
	n, errno := rawRead(c.fd, c.pc.ReadBuffer())
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	if errno != 0 || n == 0 {
		if c.pc.Buffered() > 0 && errno == 0 {
			s.log.Debug("connection closed inside a record", "fd", c.fd)
		}
		s.closeConn(c)
		return false
	}
	c.pc.Advance(n)
	return true
}

// process handles the decoded events of c until it needs more bytes.
func (s *Server) process(c *conn) {
	if c.lingering {
		if s.dropBody(c) {
			s.closeConn(c)
		}
		return
	}
	for !c.closed && !c.lingering {
		ev, err := c.pc.Next()
		if err != nil {
			if c.pc.SkipRequest() {
				s.refuse(c, err)
				return
			}
			s.log.Warn("bad FastCGI stream, closing the connection", "err", err)
			s.closeConn(c)
			return
		}
		switch ev.Kind {
		case protocol.EventNone:
			return
		case protocol.EventReply:
			if !s.write(c, ev.Data) || ev.Close {
				s.closeConn(c)
			}
		case protocol.EventAbort:
			// aborted before the script ran: answer it as finished
			s.wbuf = protocol.AppendEndRequest(s.wbuf[:0], ev.RequestID, 0, protocol.StatusRequestComplete)
			keep := c.pc.KeepConn()
			c.pc.FinishRequest()
			c.seq++
			if !s.write(c, s.wbuf) || !keep {
				s.closeConn(c)
			}
		case protocol.EventRequest:
			s.handle(c)
		}
	}
}

// Defaults of the response and body limits.
const (
	// DefaultMaxBody is the largest request body a script may read, like
	// PHP's post_max_size.
	DefaultMaxBody = 8 << 20
	// DefaultOutputBuffer is the output a script buffers before it is
	// sent: small responses still go out in one write, large ones cost a
	// bounded amount of memory.
	DefaultOutputBuffer = 64 << 10
	// flushChunk bounds the STDOUT records a flush encodes per write.
	flushChunk = 256 << 10
)

// handle runs one request and writes its response in one write, or, for
// a response larger than the output buffer or one the script flushed, in
// several (flushOut).
func (s *Server) handle(c *conn) {
	params := c.pc.Params()
	id := c.pc.RequestID()
	s.index = indexParams(s.index[:0], params)
	script := param(params, s.index, "SCRIPT_FILENAME")
	s.wd.begin(script, params)
	rep := s.cfg.Reporter
	if rep != nil {
		rep.Begin(param(params, s.index, "REQUEST_METHOD"), param(params, s.index, "REQUEST_URI"), script)
		rep.Details(parseLength(param(params, s.index, "CONTENT_LENGTH")), param(params, s.index, "REMOTE_USER"))
	}
	s.body.c = c
	s.body.pending = nil
	s.body.done = false
	s.body.err = nil

	var out []byte
	if page := s.special(params); page != nil {
		out = protocol.AppendResponse(s.wbuf[:0], id, page, nil, 0)
	} else if s.cfg.MaxBody > 0 && parseLength(param(params, s.index, "CONTENT_LENGTH")) > s.cfg.MaxBody {
		out = s.tooLarge(id, script, false)
	} else if chunk, err := s.cache.Lookup(script); err != nil {
		out = s.failure(id, script, err)
	} else {
		s.req.Params = params
		s.req.Index = s.index
		var err error
		if h := s.ho; h != nil {
			// While the script runs, magnetd may have this worker's other
			// idle connections taken over (handoff.go).
			h.cur = c.fd
			h.own.Unlock()
			err = s.st.Run(chunk, &s.req)
			h.own.Lock()
			h.cur = -1
			s.settleMoved()
		} else {
			err = s.st.Run(chunk, &s.req)
		}
		switch {
		case c.closed:
			// a flush found the client gone: nothing more to send
			out = s.wbuf[:0]
			if err != nil {
				s.log.Debug("client gone while the script ran", "script", string(script), "err", err.Error())
			}
		case s.st.BodyTooLarge() && !s.st.Flushed():
			out = s.tooLarge(id, script, s.st.UploadTooLarge())
		case err != nil && s.st.Flushed():
			out = s.failedLate(id, script, err)
		case err != nil:
			out = s.failure(id, script, err)
		case s.st.Flushed():
			out = protocol.AppendResponse(s.wbuf[:0], id, s.st.Output(), nil, 0)
		default:
			out = s.respond(id, script)
		}
		s.req.Params = nil
	}
	s.wbuf = out[:0]
	if s.body.err == errAborted {
		// the web server no longer wants the answer; END_REQUEST only
		out = protocol.AppendEndRequest(out[:0], id, 0, protocol.StatusRequestComplete)
	}
	keep := c.pc.KeepConn() && (!s.stopping.Load() || s.fullStop.Load() || s.handingOver())
	ok := !c.closed && s.write(c, out)
	s.wd.end()
	s.noteScripts()
	if rep != nil {
		rep.End(s.st.MemoryBytes())
	}
	switch {
	case !ok || keep:
		c.pc.FinishRequest()
	case s.body.done || s.body.err != nil:
		c.pc.FinishRequest()
		s.closeConn(c)
	default:
		s.linger(c)
	}
	if cap(s.wbuf) > 1<<20 {
		s.wbuf = make([]byte, 0, 16<<10) // do not keep a huge response's buffer
	}
	s.requests++
	if s.requests == s.cfg.SettledAfter && s.cfg.Settled != nil {
		s.cfg.Settled()
	}
	s.busy = s.cfg.BusyPoll > 0
	c.served++
	c.seq++
	if s.st.Unsound() && !s.stopping.Load() {
		s.log.Error("Lua state still over its memory limit after a full collection, exiting to be replaced",
			"script", string(script), "heap", s.st.MemoryBytes(), "limit", s.cfg.MemoryLimit)
		s.Shutdown()
	}
	if s.cfg.MaxRequests > 0 && s.requests == s.cfg.MaxRequests {
		s.log.Info("max requests reached, exiting", "requests", s.requests)
		s.Shutdown()
	}
}

// flushOut is the Request.Flush of every run: it sends the header block
// and what the script printed so far as STDOUT records, at most
// flushChunk bytes per write, so that a large response never sits whole in
// memory. A client that takes nothing for SendTimeout is dropped (write).
func (s *Server) flushOut(header, body []byte) error {
	c := s.body.c
	if c == nil || c.closed {
		return errClosed
	}
	id := c.pc.RequestID()
	out := s.wbuf[:0]
	for _, p := range [2][]byte{header, body} {
		for len(p) > 0 {
			k := min(len(p), flushChunk)
			out = protocol.AppendStream(out, protocol.TypeStdout, id, p[:k])
			p = p[k:]
			if len(out) >= flushChunk {
				if !s.write(c, out) {
					s.wbuf = out[:0]
					return errClosed
				}
				out = out[:0]
			}
		}
	}
	s.wbuf = out[:0]
	if len(out) > 0 && !s.write(c, out) {
		return errClosed
	}
	return nil
}

// tooLarge answers a request whose body is over MaxBody, or whose uploads
// are over their limit, with 413.
func (s *Server) tooLarge(id uint16, script []byte, uploads bool) []byte {
	if uploads {
		limit := s.cfg.Uploads.MaxBytes
		if limit == 0 {
			limit = luabind.DefaultMaxUpload
		}
		s.log.Info("uploaded files over the limit, answering 413", "script", string(script), "max-upload", limit)
	} else {
		s.log.Info("request body over the limit, answering 413", "script", string(script), "max-body", s.cfg.MaxBody)
	}
	return protocol.AppendResponse(s.wbuf[:0], id, contentTooLarge, nil, 0)
}

// contentTooLarge is the CGI response to a body over MaxBody.
var contentTooLarge = []byte("Status: 413 Content Too Large\r\nContent-Type: text/plain\r\n\r\nContent Too Large\n")

// failedLate ends a response whose headers a flush has sent when its
// script then fails: the status cannot change, so the response ends with
// what was printed, the error on STDERR (the web server logs it) and a
// non-zero application status.
func (s *Server) failedLate(id uint16, script []byte, err error) []byte {
	detail := err.Error()
	s.log.Warn("script failed after sending its headers", "script", string(script), "err", detail)
	return protocol.AppendResponse(s.wbuf[:0], id, s.st.Output(), []byte(detail+"\n"), 1)
}

// refuse answers a request over the protocol limits with 431 and closes
// the connection once the web server has sent the rest of the request
// (see linger): closing at once would reset the connection, and the web
// server would lose the answer.
func (s *Server) refuse(c *conn, err error) {
	id := c.pc.RequestID()
	s.log.Info("request over the limits, answering 431", "fd", c.fd, "id", id, "err", err)
	s.contained(CloseLimit)
	out := protocol.AppendResponse(s.wbuf[:0], id, refusal, nil, 0)
	s.wbuf = out[:0]
	c.seq++
	if s.write(c, out) {
		s.linger(c)
	}
}

// refusal is the CGI response to a request over the protocol limits.
var refusal = []byte("Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n\r\nRequest Header Fields Too Large\n")

// linger closes c, whose response is written, once the web server has
// sent the rest of the body the script did not read. Closing a socket with
// unread data resets it, and a web server still writing the body reports
// the failed write as an error (nginx answers 502). The write side is shut
// down at once; process drops what else arrives and closes c at the end
// of the body or of the connection.
func (s *Server) linger(c *conn) {
	if s.dropBody(c) {
		c.pc.FinishRequest()
		s.closeConn(c)
		return
	}
	unix.Shutdown(c.fd, unix.SHUT_WR)
	c.lingering = true
}

// dropBody drops the buffered part of the current request's body; true
// once its end (or an abort, or a broken stream) has been seen.
func (s *Server) dropBody(c *conn) bool {
	for {
		ev, err := c.pc.Next()
		if err != nil {
			return true
		}
		switch ev.Kind {
		case protocol.EventNone:
			return false
		case protocol.EventStdinEnd, protocol.EventAbort:
			return true
		}
	}
}

func (s *Server) special(params protocol.Params) []byte {
	if s.cfg.Special == nil {
		return nil
	}
	return s.cfg.Special(param(params, s.index, "SCRIPT_NAME"), param(params, s.index, "QUERY_STRING"))
}

// indexParams appends four numbers per pair of p to idx: the offset and
// length of its name, then of its value (luabind.Request's Index). It
// decodes the lengths in line, since it runs on every request, and stops
// at a malformed pair, as protocol.Params.Next would.
func indexParams(idx []uint32, p protocol.Params) []uint32 {
	for off := 0; off < len(p); {
		nlen, i := paramLen(p, off)
		if i < 0 {
			break
		}
		vlen, j := paramLen(p, i)
		if j < 0 || nlen > len(p)-j || vlen > len(p)-j-nlen {
			break
		}
		idx = append(idx, uint32(j), uint32(nlen), uint32(j+nlen), uint32(vlen))
		off = j + nlen + vlen
	}
	return idx
}

// paramLen decodes the pair length at p[off:] (one byte, or four with
// the high bit set) and returns it with the offset after it; -1 if it
// does not fit.
func paramLen(p protocol.Params, off int) (n, next int) {
	if off >= len(p) {
		return 0, -1
	}
	if b := p[off]; b < 0x80 {
		return int(b), off + 1
	}
	if len(p)-off < 4 {
		return 0, -1
	}
	return int(p[off]&0x7f)<<24 | int(p[off+1])<<16 | int(p[off+2])<<8 | int(p[off+3]), off + 4
}

// param returns the value of the first pair named name, found through
// idx (indexParams of p) rather than by decoding p again; nil if none.
func param(p protocol.Params, idx []uint32, name string) []byte {
	for k := 0; k+3 < len(idx); k += 4 {
		if int(idx[k+1]) == len(name) && string(p[idx[k]:idx[k]+idx[k+1]]) == name {
			return p[idx[k+2] : idx[k+2]+idx[k+3] : idx[k+2]+idx[k+3]]
		}
	}
	return nil
}

// failure builds the response for a script that could not be served:
// the status and a short body on STDOUT, the details on STDERR.
func (s *Server) failure(id uint16, script []byte, err error) []byte {
	status := 500
	var se *scripts.Error
	if errors.As(err, &se) {
		status = se.Status
	}
	detail := err.Error()
	if status == 500 {
		s.log.Warn("script failed", "script", string(script), "err", detail)
	} else {
		s.log.Debug("script refused", "script", string(script), "status", status, "err", detail)
	}
	text := statusText(status)
	b := s.errb[:0]
	b = append(b, "Status: "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, "\r\nContent-Type: text/plain\r\n\r\n"...)
	b = append(b, text...)
	b = append(b, '\n')
	if s.cfg.Debug {
		b = append(b, detail...)
		b = append(b, '\n')
	}
	s.errb = b
	var stderr []byte
	if status == 500 {
		stderr = []byte(detail + "\n")
	}
	return protocol.AppendResponse(s.wbuf[:0], id, b, stderr, 0)
}

func statusText(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	}
	return "Internal Server Error"
}

// write sends p completely; false means the connection was closed.
func (s *Server) write(c *conn, p []byte) bool {
	for len(p) > 0 {
		n, errno := rawWrite(c.fd, p)
		if errno == unix.EAGAIN {
			if err := waitFD(c.fd, unix.POLLOUT, s.cfg.SendTimeout); err != nil {
				if err == unix.ETIMEDOUT {
					s.log.Debug("closing connection", "fd", c.fd, "reason", CloseSend.String(), "after", s.cfg.SendTimeout.String())
					s.contained(CloseSend)
				} else {
					s.log.Warn("waiting to write the response", "err", err)
				}
				s.closeConn(c)
				return false
			}
			continue
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			s.log.Debug("write", "err", errno)
			s.closeConn(c)
			return false
		}
		p = p[n:]
	}
	return true
}

// bodyReader streams the current request's STDIN to the script.
type bodyReader struct {
	s       *Server
	c       *conn
	pending []byte
	done    bool
	err     error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.done {
			return 0, io.EOF
		}
		if b.err != nil {
			return 0, b.err
		}
		c := b.c
		if c.closed {
			b.err = errClosed
			return 0, b.err
		}
		ev, err := c.pc.Next()
		if err != nil {
			b.err = err
			return 0, err
		}
		switch ev.Kind {
		case protocol.EventStdin:
			b.pending = ev.Data
		case protocol.EventStdinEnd:
			b.done = true
		case protocol.EventAbort:
			b.err = errAborted
		case protocol.EventReply:
			if !b.s.write(c, ev.Data) {
				b.err = errClosed
			}
		case protocol.EventNone:
			if err := waitFD(c.fd, unix.POLLIN, b.s.cfg.ReadTimeout); err != nil {
				if err == unix.ETIMEDOUT {
					b.s.log.Debug("request body stopped arriving", "fd", c.fd, "after", b.s.cfg.ReadTimeout.String())
					b.s.contained(CloseRead)
				}
				b.err = err
				return 0, err
			}
			if !b.s.fill(c) && c.closed {
				b.err = errClosed
			}
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// parseLength reads a CONTENT_LENGTH value without allocating; anything
// that is not a plain decimal number counts as 0.
func parseLength(b []byte) int64 {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' || n > 1<<50 {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
