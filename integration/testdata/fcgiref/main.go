// Command fcgiref is a tiny reference FastCGI responder built on
// net/http/fcgi. The integration tests put it behind the same web server
// configurations as magnet-worker, so a failure can be told apart: a broken
// server setup fails with fcgiref too, a broken worker only with the worker.
//
// Without --listen it serves on fd 0, the way lighttpd's bin-path and
// spawn-fcgi start FastCGI programs. Every response body is
// "ref <pid> <SCRIPT_FILENAME>".
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
)

func main() {
	listen := flag.String("listen", "", "unix socket path to listen on (default: fd 0)")
	flag.Parse()

	var l net.Listener
	if *listen != "" {
		var err error
		l, err = net.Listen("unix", *listen)
		if err != nil {
			log.Fatalf("fcgiref: %v", err)
		}
	}
	pid := os.Getpid()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := fcgi.ProcessEnv(r)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "ref %d %s", pid, env["SCRIPT_FILENAME"])
	})
	if err := fcgi.Serve(l, h); err != nil {
		log.Fatalf("fcgiref: %v", err)
	}
}
