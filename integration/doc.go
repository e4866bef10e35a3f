// Package integration runs magnet-worker behind real parts: lighttpd
// spawning it through bin-path, nginx with keep-alive FastCGI connections,
// spawn-fcgi forking several workers on one socket, real signals, and a
// long soak of errors over a real socket.
//
// The package holds tests only. TestMain builds cmd/magnet-worker and a
// small reference responder (testdata/fcgiref); the tests need the
// lighttpd, nginx-light and spawn-fcgi Debian packages and fail, never
// skip, when they are missing.
package integration
