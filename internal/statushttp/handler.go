// Package statushttp serves the status page of package status over HTTP
// (magnetd's --status-listen). It is apart from package status so that
// workers, which render the page for FastCGI requests, do not link net/http.
package statushttp

import (
	"bytes"
	"net/http"

	"github.com/magnet-fcgi/magnet/internal/status"
)

// Handler serves p's status page at /status (the format chosen by the
// query string as ParseQuery does) and answers "pong" at /ping, with the
// no-cache headers PHP-FPM sends. Other paths are not found.
func Handler(p *status.Pool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		format, full := status.ParseQuery(r.URL.RawQuery)
		var buf bytes.Buffer
		if err := status.Render(&buf, p, format, full); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		noCache(w.Header())
		w.Header().Set("Content-Type", status.ContentType(format))
		w.Write(buf.Bytes())
	})
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		noCache(w.Header())
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(status.Pong))
	})
	return mux
}

func noCache(h http.Header) {
	for _, kv := range status.NoCacheHeaders {
		h.Set(kv[0], kv[1])
	}
}
