package supervisor

import (
	"fmt"
	"syscall"
	"time"
)

// checkStart waits, polling the board, for the first generation to get
// ready; at Config.StartTimeout without a ready worker it fails the start.
func (s *Supervisor) checkStart() {
	if s.started || s.stopping {
		return
	}
	now := s.os.Now()
	ready := 0
	for _, p := range s.procs {
		if p.gen == s.gen && !p.retiring && now.Sub(p.started) >= s.cfg.ReadyDelay &&
			(s.cfg.Board == nil || s.cfg.Board.Attached(p.slot)) {
			ready++
		}
		if s.cfg.Board != nil && s.cfg.Board.Served(p.slot) > 0 {
			s.served = true
		}
	}
	late := now.Sub(s.start) >= s.cfg.StartTimeout
	switch {
	case ready == s.cfg.Workers || s.served:
		s.ready()
		return
	case ready > 0 && late:
		s.log.Warn("not every worker got ready in time; serving with the others",
			"ready", ready, "workers", s.cfg.Workers, "start_timeout", s.cfg.StartTimeout)
		s.ready()
		return
	case late:
		s.startErr = s.startFailure()
		s.log.Error("start failed", "err", s.startErr)
		s.stop(syscall.SIGTERM)
		return
	}
	s.os.AfterFunc(readyPoll, func() { s.post(s.checkStart) })
}

// ready marks the first generation ready and calls Config.Ready.
func (s *Supervisor) ready() {
	s.started = true
	s.log.Debug("workers ready", "workers", s.cfg.Workers, "after", s.os.Now().Sub(s.start).Round(time.Millisecond))
	if s.cfg.Ready != nil {
		s.cfg.Ready()
	}
}

// startFailure is the error of a first generation that never got ready,
// with the worker's own last words.
func (s *Supervisor) startFailure() error {
	s.outMu.Lock()
	line, exit := s.lastLine, s.lastExit
	s.outMu.Unlock()
	err := fmt.Sprintf("no worker got ready within %v", s.cfg.StartTimeout)
	if exit != "" {
		err += " (a worker ended with " + exit + ")"
	}
	if line != "" {
		err += ": " + line
	}
	return fmt.Errorf("starting workers: %s", err)
}

// noteOutput keeps a worker's latest line of output for startFailure.
func (s *Supervisor) noteOutput(line string) {
	if line == "" {
		return
	}
	s.outMu.Lock()
	s.lastLine = line
	s.outMu.Unlock()
}

// noteExit keeps how a worker of a generation not yet ready ended.
func (s *Supervisor) noteExit(e Exit) {
	if s.started {
		return
	}
	s.outMu.Lock()
	s.lastExit = e.Status
	s.outMu.Unlock()
}
