package devhttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/magnet-fcgi/magnet/protocol"
)

// conn is a FastCGI connection to the application.
type conn struct {
	*protocol.Client
}

// get returns an idle connection, or a new one; reused says which.
func (f *Front) get() (c *conn, reused bool, err error) {
	select {
	case c := <-f.idle:
		return c, true, nil
	default:
	}
	nc, err := f.dial()
	if err != nil {
		return nil, false, fmt.Errorf("devhttp: connecting to the application: %w", err)
	}
	return &conn{protocol.NewClient(nc)}, false, nil
}

// put keeps c for reuse, or closes it when enough are idle.
func (f *Front) put(c *conn) {
	select {
	case f.idle <- c:
	default:
		c.Close()
	}
}

// body counts what the application read of the request body, so that a
// request is retried only when nothing was consumed.
type body struct {
	r   io.Reader
	n   int64
	eof bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// script passes a request to the application and streams its answer.
func (f *Front) script(w http.ResponseWriter, r *http.Request, t target, query, requestURI string, depth int) {
	req := &protocol.Request{
		KeepConn: f.maxIdle > 0,
		Params:   f.params(r, t, query, requestURI),
	}
	out := newResponse(w, r)
	var in *body
	if r.Body != nil && r.Body != http.NoBody && depth == 0 {
		in = &body{r: r.Body}
		req.Body = in
		// The application may answer while the body still arrives; by
		// default net/http would discard the unread body at the first
		// write of the response.
		out.rc.EnableFullDuplex()
	}
	stderr := &lines{log: f.log, script: t.scriptName}

	var err error
	var proto uint8
	for try := 0; ; try++ {
		var c *conn
		var reused bool
		c, reused, err = f.get()
		if err != nil {
			break
		}
		_, proto, err = c.Stream(req, out, stderr)
		if err == nil {
			if req.KeepConn && (in == nil || in.eof) {
				f.put(c)
			} else {
				c.Close()
			}
			break
		}
		c.Close()
		// A kept connection the application closed in the meantime fails
		// before any answer: try once more on a new one, if nothing of the
		// body was read.
		if !reused || try > 0 || out.received > 0 || stderr.n > 0 || (in != nil && in.n > 0) {
			break
		}
	}
	stderr.flush()

	switch {
	case err != nil:
		f.log.Error("devhttp: FastCGI request failed", "script", t.scriptName, "uri", requestURI, "err", err)
		out.fail(http.StatusBadGateway)
	case proto != protocol.StatusRequestComplete:
		f.log.Error("devhttp: application refused the request", "script", t.scriptName, "protocolStatus", proto)
		out.fail(http.StatusServiceUnavailable)
	case out.redirect != "":
		if depth >= maxRedirects {
			f.log.Error("devhttp: too many local redirects", "script", t.scriptName, "location", out.redirect)
			out.fail(http.StatusInternalServerError)
			return
		}
		f.localRedirect(w, r, out.redirect, depth+1)
	default:
		if err := out.finish(); err != nil {
			f.log.Error("devhttp: bad response", "script", t.scriptName, "uri", requestURI, "err", err)
		}
	}
}

// localRedirect serves the local path of a Location header as a new GET
// request without a body (RFC 3875 section 6.2.2).
func (f *Front) localRedirect(w http.ResponseWriter, r *http.Request, location string, depth int) {
	upath, query, _ := strings.Cut(location, "?")
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet
	r2.Body = http.NoBody
	r2.ContentLength = 0
	r2.Header.Del("Content-Type")
	r2.Header.Del("Content-Length")
	f.serve(w, r2, upath, query, location, depth)
}

var errHeaderTooLong = errors.New("devhttp: CGI header block longer than 64 KiB")
