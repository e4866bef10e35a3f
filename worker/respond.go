package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/magnet-fcgi/magnet/protocol"
)

// respond frames a script's finished response once it is a CGI response
// (a header block built from magnet.header and magnet.status, or printed
// before the page) and its Content-Length, if it set one, matches the body
// (the web server would cut the page short, or wait for bytes that never
// come). Anything else is a 500 with a log line that says what to fix.
func (s *Server) respond(id uint16, script []byte) []byte {
	h, body := s.st.HeaderBlock(), s.st.Output()
	if h == nil {
		end := headerEnd(body)
		if end < 0 {
			return s.failure(id, script, notCGI(body))
		}
		h, body = body[:end], body[end:]
	}
	if err := checkLength(h, body); err != nil {
		return s.failure(id, script, err)
	}
	out := s.wbuf[:0]
	if h := s.st.HeaderBlock(); h != nil {
		out = protocol.AppendStream(out, protocol.TypeStdout, id, h)
	}
	return protocol.AppendResponse(out, id, s.st.Output(), nil, 0)
}

// errNotCGI is the error for printed output without a header block: the
// web server would answer 502 with a log line that names no cause.
var errNotCGI = errors.New("the script's output is not a CGI response: set magnet.header or magnet.status, or print a header block (\"Content-Type: text/html\\r\\n\\r\\n\") before the page")

// notCGI is errNotCGI with the start of the output, which shows what the
// script printed first.
func notCGI(out []byte) error {
	if len(out) == 0 {
		return fmt.Errorf("%w (it printed nothing)", errNotCGI)
	}
	return fmt.Errorf("%w (it begins %q)", errNotCGI, out[:min(len(out), 40)])
}

// headerEnd is the length of the CGI header block that starts out (its
// blank line included), or -1 when out does not start with one. A header
// block (RFC 3875 section 6) is one or more lines "Name: value", the name
// an HTTP token, ended by CRLF or LF, then a blank line; "Status: 200" or
// "Location: /x" alone is one.
func headerEnd(out []byte) int {
	for off := 0; off < len(out); {
		nl := bytes.IndexByte(out[off:], '\n')
		if nl < 0 {
			return -1
		}
		line := out[off : off+nl]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			if off == 0 {
				return -1
			}
			return off + nl + 1
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return -1
		}
		off += nl + 1
	}
	return -1
}

// isToken reports whether name is an HTTP token (RFC 9110 section 5.6.2),
// so that a page's first line ("<p>Note: ...", a JSON object) is not
// taken for a header.
func isToken(name []byte) bool {
	for _, c := range name {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// checkLength compares a Content-Length in header with the body. A body
// one "\n" longer passes: print's newline after a page whose length the
// script counted (the seed's 123.lua), which the web server drops.
func checkLength(header, body []byte) error {
	v := headerValue(header, "content-length")
	if v == nil {
		return nil
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
	switch {
	case err != nil || n < 0:
		return fmt.Errorf("the script set Content-Length %q, which is not a length", v)
	case n == int64(len(body)), n == int64(len(body))-1 && body[len(body)-1] == '\n':
		return nil
	}
	return fmt.Errorf("the script set Content-Length %d but its body has %d bytes: set the right length or none", n, len(body))
}

// headerValue finds a header (name in lower case) in a CGI header block.
func headerValue(block []byte, name string) []byte {
	for len(block) > 0 {
		nl := bytes.IndexByte(block, '\n')
		if nl < 0 {
			nl = len(block)
		}
		line := block[:nl]
		block = block[min(nl+1, len(block)):]
		if len(line) > len(name) && line[len(name)] == ':' && asciiLowerEqual(line[:len(name)], name) {
			return bytes.TrimRight(line[len(name)+1:], "\r")
		}
	}
	return nil
}

func asciiLowerEqual(b []byte, lower string) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// scriptLog is magnet.log's sink: a log line with the script, URI and
// pid; a warning or an error also goes to the web server as FCGI_STDERR
// (its error log), as a script error does.
func (s *Server) scriptLog(level slog.Level, msg string) {
	var script, uri []byte
	if s.req.Params != nil {
		script, _ = protocol.Params(s.req.Params).Lookup("SCRIPT_FILENAME")
		uri, _ = protocol.Params(s.req.Params).Lookup("REQUEST_URI")
	}
	s.log.Log(context.Background(), level, msg, "script", string(script), "uri", string(uri), "pid", os.Getpid())
	c := s.body.c
	if level < slog.LevelWarn || s.req.Params == nil || c == nil || c.closed {
		return
	}
	line := make([]byte, 0, len(msg)+64)
	line = append(line, level.String()...)
	line = append(line, ": "...)
	line = append(line, msg...)
	line = append(line, '\n')
	s.write(c, protocol.AppendStream(nil, protocol.TypeStderr, c.pc.RequestID(), line))
}

// runInit runs the --init file once, in the global environment, before
// the first request.
func (s *Server) runInit(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--init: %w", err)
	}
	if err := s.st.DoString(string(src), "@"+path); err != nil {
		return fmt.Errorf("--init %s: %w", path, err)
	}
	return nil
}
