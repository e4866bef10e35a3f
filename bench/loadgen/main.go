// Command loadgen drives a FastCGI responder with a fixed request and
// measures it: requests per second and the latency distribution, over
// keep-alive or new connections, one goroutine per connection.
//
// It pre-encodes the request once, verifies each response body against
// -expect, records latencies in a fixed-size histogram (no allocation per
// request on keep-alive connections) and prints one JSON line:
//
//	{"requests":..,"seconds":..,"rps":..,"p50_us":..,"p90_us":..,"p99_us":..,"max_us":..,
//	 "failures":..,"in_flight_at_end":..,"starved":..,"conns":..,"keepconn":..}
//
// A request still unanswered when the run ends counts in in_flight_at_end,
// not in requests, and its wait so far counts as its latency (in max_us).
// One sent before the measurement began is starved: its connection waited
// through the whole run, as happens with servers that serve one
// connection per process.
//
// Usage:
//
//	loadgen -addr /tmp/magnet.sock -c 2 -keepconn -d 5s -script /srv/123.lua -expect 123
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.network, "network", "unix", "`network` of the FastCGI server: unix or tcp")
	flag.StringVar(&cfg.addr, "addr", "", "`address` of the FastCGI server: a socket path or host:port")
	flag.IntVar(&cfg.conns, "c", 2, "number of concurrent connections")
	flag.BoolVar(&cfg.keepConn, "keepconn", false, "keep connections open (FCGI_KEEP_CONN); else one connection per request")
	flag.DurationVar(&cfg.duration, "d", 5*time.Second, "measured `duration` (ignored with -n)")
	flag.Int64Var(&cfg.total, "n", 0, "stop after this many measured requests instead of after -d")
	flag.StringVar(&cfg.script, "script", "", "SCRIPT_FILENAME sent with each request")
	flag.StringVar(&cfg.query, "query", "", "QUERY_STRING sent with each request")
	flag.DurationVar(&cfg.warmup, "warmup", 500*time.Millisecond, "`duration` of unmeasured load before the measurement")
	flag.StringVar(&cfg.expect, "expect", "123", "expected response body (after the CGI headers)")
	flag.DurationVar(&cfg.think, "think", 0, "pause this long after each answer before a connection's next request: a client slower than the server")
	flag.BoolVar(&cfg.raw, "raw", false, "use blocking system calls on raw sockets, one OS thread per connection, instead of Go's network poller")
	flag.Parse()
	if cfg.addr == "" || cfg.script == "" || cfg.conns < 1 || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -addr and -script are required, -c must be at least 1")
		flag.Usage()
		os.Exit(2)
	}
	res, err := run(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s\n", out)
}

// requestParams returns the CGI parameters of a GET of script with the
// query string query, close to what lighttpd and nginx send.
func requestParams(script, query string) []protocol.Pair {
	name := "/" + filepath.Base(script)
	uri := name
	if query != "" {
		uri += "?" + query
	}
	kv := [][2]string{
		{"SCRIPT_FILENAME", script},
		{"SCRIPT_NAME", name},
		{"REQUEST_URI", uri},
		{"DOCUMENT_URI", name},
		{"DOCUMENT_ROOT", filepath.Dir(script)},
		{"QUERY_STRING", query},
		{"REQUEST_METHOD", "GET"},
		{"CONTENT_LENGTH", ""},
		{"CONTENT_TYPE", ""},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"SERVER_SOFTWARE", "magnet-loadgen"},
		{"SERVER_NAME", "localhost"},
		{"SERVER_ADDR", "127.0.0.1"},
		{"SERVER_PORT", "80"},
		{"REMOTE_ADDR", "127.0.0.1"},
		{"REMOTE_PORT", "40000"},
		{"HTTP_HOST", "localhost"},
		{"HTTP_USER_AGENT", "magnet-loadgen"},
		{"HTTP_ACCEPT", "*/*"},
		{"REDIRECT_STATUS", "200"},
	}
	pairs := make([]protocol.Pair, len(kv))
	for i, p := range kv {
		pairs[i] = protocol.Pair{Name: p[0], Value: p[1]}
	}
	return pairs
}
