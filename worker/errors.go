package worker

import (
	"errors"
	"io"
)

var (
	errEOF    = io.EOF
	errClosed = errors.New("connection closed by the web server")
)
