package devhttp

import (
	"net"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/magnet-fcgi/magnet/protocol"
)

// params returns the CGI/1.1 parameters (RFC 3875 section 4.1) of a
// request for target t.
func (f *Front) params(r *http.Request, t target, query, requestURI string) []protocol.Pair {
	p := make([]protocol.Pair, 0, 24+len(r.Header))
	add := func(name, value string) { p = append(p, protocol.Pair{Name: name, Value: value}) }

	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_SOFTWARE", f.software)
	add("SERVER_PROTOCOL", r.Proto)
	add("REQUEST_METHOD", r.Method)
	add("REQUEST_URI", requestURI)
	add("QUERY_STRING", query)
	add("DOCUMENT_ROOT", f.dir)
	add("SCRIPT_NAME", t.scriptName)
	add("SCRIPT_FILENAME", path.Join(f.dir, t.file))
	if t.pathInfo != "" {
		add("PATH_INFO", t.pathInfo)
		add("PATH_TRANSLATED", f.dir+t.pathInfo)
	}

	scheme, defPort := "http", "80"
	if r.TLS != nil {
		scheme, defPort = "https", "443"
		add("HTTPS", "on")
	}
	add("REQUEST_SCHEME", scheme)
	host, port := splitHostPort(r.Host)
	if host == "" {
		host = "localhost"
	}
	add("SERVER_NAME", host)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if a, p, err := net.SplitHostPort(la.String()); err == nil {
			add("SERVER_ADDR", a)
			port = p
		}
	}
	if port == "" {
		port = defPort
	}
	add("SERVER_PORT", port)
	if a, p, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		add("REMOTE_ADDR", a)
		add("REMOTE_PORT", p)
	} else {
		add("REMOTE_ADDR", r.RemoteAddr)
	}

	if ct := r.Header.Get("Content-Type"); ct != "" {
		add("CONTENT_TYPE", ct)
	}
	// CONTENT_LENGTH is set only for a body of known length (RFC 3875
	// 4.1.2); a chunked body is streamed and ends with the empty STDIN
	// record.
	if r.ContentLength > 0 {
		add("CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}

	// The request headers as HTTP_* (RFC 3875 4.1.18), in a stable order.
	if r.Host != "" {
		add("HTTP_HOST", r.Host)
	}
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cgi, ok := headerVar(name)
		if !ok {
			continue
		}
		sep := ", "
		if cgi == "HTTP_COOKIE" {
			sep = "; "
		}
		add(cgi, strings.Join(r.Header[name], sep))
	}
	return p
}

// headerVar maps a request header name to its CGI variable. It refuses
// the headers already passed as CONTENT_*, Proxy (httpoxy: it would set
// HTTP_PROXY in the application's environment), and names with an
// underscore, which would collide with a dashed name once mapped.
func headerVar(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "content-type", "content-length", "proxy", "host":
		return "", false
	}
	if strings.IndexByte(name, '_') >= 0 {
		return "", false
	}
	return "HTTP_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")), true
}

// splitHostPort splits a Host header value; the port may be absent.
func splitHostPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.Trim(hostport, "[]"), ""
}
