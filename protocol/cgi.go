package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
)

// ParseCGI splits a CGI response (RFC 3875 section 6) into status, header
// and body. The header block ends at the first blank line (CRLF or LF line
// ends). The Status header sets the status and is removed from header;
// without it the status is 302 when a Location header is present (a client
// redirect, or a local redirect the web server would follow) and 200
// otherwise. body aliases stdout. The header is a textproto.MIMEHeader
// (convert it with http.Header(h)) so that this package does not link
// net/http into the workers.
func ParseCGI(stdout []byte) (status int, header textproto.MIMEHeader, body []byte, err error) {
	header = make(textproto.MIMEHeader)
	rest := stdout
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return 0, nil, nil, errors.New("protocol: CGI response: header block not terminated by a blank line")
		}
		line := rest[:i]
		rest = rest[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, nil, nil, fmt.Errorf("protocol: CGI response: malformed header line %q", line)
		}
		name := line[:colon]
		if bytes.ContainsAny(name, " \t") {
			return 0, nil, nil, fmt.Errorf("protocol: CGI response: malformed header name %q", name)
		}
		header.Add(string(name), textproto.TrimString(string(line[colon+1:])))
	}
	body = rest

	if s := header.Get("Status"); s != "" {
		header.Del("Status")
		code := s
		if i := strings.IndexByte(s, ' '); i >= 0 {
			code = s[:i]
		}
		status, err = strconv.Atoi(code)
		if err != nil || len(code) != 3 || status < 100 {
			return 0, nil, nil, fmt.Errorf("protocol: CGI response: bad Status %q", s)
		}
		return status, header, body, nil
	}
	if header.Get("Location") != "" {
		return 302, header, body, nil
	}
	return 200, header, body, nil
}
