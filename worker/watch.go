package worker

// bindCache directs the script cache's change notifications to the serving
// thread, which Serve has locked: a script written before a request was
// sent is then reloaded for that request, with no system call per request
// while nothing changes (scripts/watch.go). The notification, a signal,
// interrupts the loop's waits, which retry on EINTR.
func (s *Server) bindCache() {
	if err := s.cache.BindThread(); err != nil {
		s.log.Warn("change detection: cannot direct notifications to the serving thread, changes are seen a moment late", "err", err)
	}
}
