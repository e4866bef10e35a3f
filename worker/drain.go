package worker

// Stop is the full stop, when no other worker will take this one's
// connections over (magnetd is stopping: a host leaves its balancer). The
// worker takes the connections already queued on the listening socket,
// shuts the socket down so that new connections are refused at once (the
// balancer moves on; nginx retries a refused connect even for a POST, as
// nothing was sent), and answers every request that arrives on the
// connections it holds. It closes none of them while the web server may be
// writing on it: it waits for the web server to close them (nginx retires
// upstream keep-alive connections after keepalive_requests and
// keepalive_timeout), up to DrainTimeout, then returns from Serve.
//
// Shutdown is the stop of one worker among others that keep serving.
// Stop is safe to call from any goroutine.
func (s *Server) Stop() {
	s.fullStop.Store(true)
	s.Shutdown()
}

// beginFullStop starts Stop's drain in the loop's goroutine.
func (s *Server) beginFullStop() {
	for _, fd := range s.closeListener() {
		s.adopt(fd)
	}
	s.log.Info("stopping: waiting for the web server to close its connections",
		"connections", s.nconns, "drain_timeout", s.cfg.DrainTimeout.String())
}
