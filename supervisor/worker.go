package supervisor

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// spawn starts one worker for pool position i in the current generation.
func (s *Supervisor) spawn(i int) (*proc, error) {
	slot := i + (s.gen%2)*s.cfg.Workers
	env := s.cfg.Env
	if s.cfg.Board != nil {
		env = append(env[:len(env):len(env)], s.cfg.Board.Env(slot)...)
	}
	spec := &Spec{
		Path:       s.cfg.Path,
		Argv:       s.cfg.Argv,
		Env:        env,
		Dir:        s.cfg.Dir,
		Chroot:     s.cfg.Chroot,
		Credential: s.cfg.Credential,
		Stdin:      s.cfg.Socket.File,
		ExtraFiles: s.cfg.ExtraFiles,
	}
	p := &proc{index: i, slot: slot, gen: s.gen}
	var child *os.File
	if s.cfg.Handoff {
		conn, f, err := handoffPair()
		if err != nil {
			return nil, err
		}
		child = f
		defer child.Close() // the worker has its copy once started
		p.ho.conn = conn
		spec.Env = append(spec.Env[:len(spec.Env):len(spec.Env)], handoffEnv(3+len(spec.ExtraFiles)))
		spec.ExtraFiles = append(spec.ExtraFiles[:len(spec.ExtraFiles):len(spec.ExtraFiles)], child)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []any{"index", i, "slot", slot, "generation", s.gen, "path", spec.Path, "argv", spec.Argv, "dir", spec.Dir}
		if spec.Chroot != "" {
			attrs = append(attrs, "chroot", spec.Chroot)
		}
		if c := spec.Credential; c != nil {
			attrs = append(attrs, "uid", c.Uid, "gid", c.Gid)
		}
		if s.cfg.Board != nil {
			attrs = append(attrs, "board_env", s.cfg.Board.Env(slot))
		}
		s.log.Debug("spawning worker", attrs...)
	}
	// The loop receives the exit only after this start is recorded: both
	// run on the loop's goroutine.
	pid, out, err := s.os.Start(spec, func(e Exit) { s.exited <- exitEvent{p: p, exit: e} })
	if err != nil {
		if p.ho.conn != nil {
			p.ho.conn.Close()
		}
		return nil, err
	}
	p.pid, p.started = pid, s.os.Now()
	if p.ho.conn != nil {
		go s.readHandoff(p)
	}
	s.mu.Lock()
	s.procs[p.pid] = p
	s.mu.Unlock()
	if s.cfg.Board != nil {
		s.cfg.Board.Started(slot, p.pid)
	}
	s.log.Info("worker started", "pid", p.pid, "index", i, "slot", slot, "generation", s.gen)
	if out != nil {
		go s.copyOutput(out, p.pid)
	}
	return p, nil
}

// copyOutput logs each line a worker writes to stdout or stderr, tagged
// with its pid, until the worker and its children close the pipe.
func (s *Supervisor) copyOutput(r io.ReadCloser, pid int) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		level, line := parseLine(sc.Text())
		s.noteOutput(line)
		msg, attrs := splitAttrs(line)
		s.log.Log(context.Background(), level, msg, append(attrs, "worker", pid)...)
	}
	if sc.Err() != nil {
		s.log.Warn("worker output line too long; discarding the rest", "worker", pid)
		io.Copy(io.Discard, r)
	}
}

// parseLine takes apart a log/slog text line from a worker such as
// magnet-worker: its own time is dropped (the master stamps the line) and
// its level becomes the level of the re-emitted line. Other lines are
// logged at info level as they are.
func parseLine(line string) (slog.Level, string) {
	rest, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return slog.LevelInfo, line
	}
	_, rest, ok = strings.Cut(rest, " ")
	if !ok {
		return slog.LevelInfo, line
	}
	lv, rest, ok := strings.Cut(rest, " ")
	name, found := strings.CutPrefix(lv, "level=")
	if !ok || !found {
		return slog.LevelInfo, line
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return slog.LevelInfo, line
	}
	return level, rest
}

// splitAttrs takes the rest of a slog text line (msg=... key=value ...)
// apart so that the master logs the worker's message and attributes as
// its own, not as one quoted string. The worker's pid attribute is
// dropped: the master tags every line with it. A line that does not parse
// is the message itself.
func splitAttrs(line string) (string, []any) {
	var msg string
	var attrs []any
	rest := line
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return line, nil
		}
		var value string
		if strings.HasPrefix(after, "\"") {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return line, nil
			}
			value, _ = strconv.Unquote(q)
			after = after[len(q):]
		} else {
			value, after, _ = strings.Cut(after, " ")
			after = " " + after
		}
		rest = strings.TrimPrefix(after, " ")
		switch key {
		case "msg":
			msg = value
		case "pid":
		default:
			attrs = append(attrs, key, value)
		}
	}
	return msg, attrs
}
