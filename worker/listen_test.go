package worker

import (
	"github.com/magnet-fcgi/magnet/internal/socket"
)

// sockets keeps test sockets reachable: an unreachable os.File closes its
// descriptor when collected.
var sockets []*socket.Socket

// Listen binds a unix socket for a test worker and returns its fd.
func Listen(path string, backlog int) (int, error) {
	s, err := socket.Listen(socket.ListenConfig{Path: path, Mode: 0o600, Backlog: backlog})
	if err != nil {
		return -1, err
	}
	sockets = append(sockets, s)
	return int(s.File.Fd()), nil
}
