package status

import (
	"bytes"
	"net/http"
)

// Handler serves p's status page at /status (the format chosen by the
// query string as ParseQuery does) and answers "pong" at /ping, with the
// no-cache headers PHP-FPM sends. Other paths are not found.
func Handler(p *Pool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		format, full := ParseQuery(r.URL.RawQuery)
		var buf bytes.Buffer
		if err := Render(&buf, p, format, full); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		noCache(w.Header())
		w.Header().Set("Content-Type", ContentType(format))
		w.Write(buf.Bytes())
	})
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		noCache(w.Header())
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(Pong))
	})
	return mux
}

// Pong is the answer to a ping request, as PHP-FPM's default ping.response.
const Pong = "pong"

// NoCacheHeaders are the headers PHP-FPM sends with status and ping
// answers, so that no proxy keeps them.
var NoCacheHeaders = [][2]string{
	{"Expires", "Thu, 01 Jan 1970 00:00:00 GMT"},
	{"Cache-Control", "no-cache, no-store, must-revalidate, max-age=0"},
}

func noCache(h http.Header) {
	for _, kv := range NoCacheHeaders {
		h.Set(kv[0], kv[1])
	}
}
