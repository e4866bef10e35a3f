// Package devhttp is an HTTP front for trying magnet without a web server:
// it maps URL paths to files under a document root, passes scripts to
// FastCGI workers with the CGI/1.1 parameters a web server would send, and
// serves other files as static content.
package devhttp

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Option configures a Front.
type Option func(*Front)

// WithLogger sets the logger for the application's FCGI_STDERR lines and
// for errors talking to it (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(f *Front) { f.log = l } }

// WithExtensions sets the file name endings that are scripts, passed to
// the application (default: ".lua"). Other files are served as they are.
func WithExtensions(exts ...string) Option { return func(f *Front) { f.exts = exts } }

// WithIndex sets the file names tried, in order, for a directory
// (default: "index.lua").
func WithIndex(names ...string) Option { return func(f *Front) { f.index = names } }

// WithMaxIdle sets how many idle keep-alive FastCGI connections are kept
// for reuse (default 8; 0 closes each connection after its request).
func WithMaxIdle(n int) Option { return func(f *Front) { f.maxIdle = n } }

// WithServerSoftware sets SERVER_SOFTWARE (default "magnetd").
func WithServerSoftware(s string) Option { return func(f *Front) { f.software = s } }

// Front is the HTTP handler. It is safe for concurrent use.
type Front struct {
	dir      string // the document root, absolute, symlinks resolved
	root     *os.Root
	dial     func() (net.Conn, error)
	log      *slog.Logger
	exts     []string
	index    []string
	maxIdle  int
	software string
	idle     chan *conn
}

// maxRedirects bounds the local redirects (RFC 3875 section 6.2.2) one
// request may go through.
const maxRedirects = 10

// New returns a Front serving the files under docroot, passing scripts to
// the FastCGI application that dial connects to.
func New(docroot string, dial func() (net.Conn, error), opts ...Option) (*Front, error) {
	f := &Front{
		dial:     dial,
		log:      slog.Default(),
		exts:     []string{".lua"},
		index:    []string{"index.lua"},
		maxIdle:  8,
		software: "magnetd",
	}
	for _, o := range opts {
		o(f)
	}
	dir, err := filepath.Abs(docroot)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("devhttp: document root: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("devhttp: document root: %w", err)
	}
	f.dir, f.root = dir, root
	f.idle = make(chan *conn, max(f.maxIdle, 0))
	return f, nil
}

// Handler returns a Front as an http.Handler. When the document root
// cannot be opened, the handler answers every request with 500 and logs
// why.
func Handler(docroot string, dial func() (net.Conn, error), opts ...Option) http.Handler {
	f, err := New(docroot, dial, opts...)
	if err != nil {
		log := slog.Default()
		probe := &Front{}
		for _, o := range opts {
			o(probe)
		}
		if probe.log != nil {
			log = probe.log
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.Error("devhttp", "err", err)
			http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		})
	}
	return f
}

// Close closes the idle FastCGI connections and the document root.
func (f *Front) Close() error {
	f.CloseIdleConnections()
	return f.root.Close()
}

// CloseIdleConnections closes the idle FastCGI connections.
func (f *Front) CloseIdleConnections() {
	for {
		select {
		case c := <-f.idle:
			c.Close()
		default:
			return
		}
	}
}

// ServeHTTP maps the request to a file and serves it.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.serve(w, r, r.URL.Path, r.URL.RawQuery, r.RequestURI, 0)
}

// target is what a URL path names under the document root.
type target struct {
	scriptName string // URL path of the file, e.g. "/app/index.lua"
	pathInfo   string // the rest of the URL path after the file
	file       string // the file relative to the root, e.g. "app/index.lua"
	info       fs.FileInfo
}

var (
	errForbidden = errors.New("forbidden")
	errNotFound  = errors.New("not found")
)

// resolve walks the URL path from the root: the first prefix that is a
// regular file is the target, and the rest is PATH_INFO. A path that ends
// on a directory names its index file. redirect is set when a directory
// was named without its trailing slash.
func (f *Front) resolve(upath string) (t target, redirect bool, err error) {
	if !strings.HasPrefix(upath, "/") || strings.IndexByte(upath, 0) >= 0 {
		return t, false, errNotFound
	}
	for _, seg := range strings.Split(upath, "/") {
		if seg == ".." {
			return t, false, errForbidden
		}
	}
	clean := path.Clean(upath)
	rel := strings.TrimPrefix(clean, "/")
	// Walk the prefixes, shortest first.
	cur := ""
	for rest := rel; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if cur == "" {
			cur = seg
		} else {
			cur = cur + "/" + seg
		}
		name := cur
		if name == "" {
			name = "."
		}
		fi, err := f.root.Stat(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
				return t, false, errNotFound
			}
			return t, false, errForbidden // e.g. a symlink out of the root
		}
		if fi.Mode().IsRegular() {
			t = target{scriptName: "/" + cur, file: cur, info: fi}
			if more {
				t.pathInfo = "/" + tail
			}
			// Clean dropped a trailing slash that belongs to PATH_INFO.
			if strings.HasSuffix(upath, "/") && !strings.HasSuffix(t.pathInfo, "/") {
				t.pathInfo += "/"
			}
			return t, false, nil
		}
		if !fi.IsDir() {
			return t, false, errForbidden
		}
		if !more || tail == "" {
			if rel != "" && !strings.HasSuffix(upath, "/") {
				return t, true, nil
			}
			for _, ix := range f.index {
				p := path.Join(cur, ix)
				if fi, err := f.root.Stat(p); err == nil && fi.Mode().IsRegular() {
					return target{scriptName: "/" + p, file: p, info: fi}, false, nil
				}
			}
			return t, false, errForbidden // no index, no listing
		}
		rest = tail
	}
}

func (f *Front) isScript(name string) bool {
	for _, e := range f.exts {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// serve answers a request for upath; depth counts local redirects.
func (f *Front) serve(w http.ResponseWriter, r *http.Request, upath, query, requestURI string, depth int) {
	t, redirect, err := f.resolve(upath)
	switch {
	case errors.Is(err, errForbidden):
		http.Error(w, "403 Forbidden", http.StatusForbidden)
		return
	case err != nil:
		http.NotFound(w, r)
		return
	case redirect:
		to := upath + "/"
		if query != "" {
			to += "?" + query
		}
		http.Redirect(w, r, to, http.StatusMovedPermanently)
		return
	}
	if !f.isScript(t.file) {
		if t.pathInfo != "" {
			http.NotFound(w, r)
			return
		}
		f.static(w, r, t)
		return
	}
	f.script(w, r, t, query, requestURI, depth)
}

// static serves a file that is not a script.
func (f *Front) static(w http.ResponseWriter, r *http.Request, t target) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	file, err := f.root.Open(t.file)
	if err != nil {
		http.Error(w, "403 Forbidden", http.StatusForbidden)
		return
	}
	defer file.Close()
	http.ServeContent(w, r, t.file, t.info.ModTime(), file)
}
