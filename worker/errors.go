package worker

import "errors"

// Why a script's read of the request body ended early.
var (
	errClosed  = errors.New("connection closed by the web server")
	errAborted = errors.New("request aborted by the web server")
)
