package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spawn starts one worker for pool position i in the current generation.
func (s *Supervisor) spawn(i int) (*proc, error) {
	slot := i + (s.gen%2)*s.cfg.Workers
	env := s.cfg.Env
	if s.cfg.SlotEnv != nil {
		env = append(env[:len(env):len(env)], s.cfg.SlotEnv(slot)...)
	}
	out, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating output pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:       s.cfg.Path,
		Args:       s.cfg.Argv,
		Env:        env,
		Dir:        s.cfg.Dir,
		Stdin:      s.cfg.Socket.File,
		Stdout:     outW,
		Stderr:     outW,
		ExtraFiles: s.cfg.ExtraFiles,
		SysProcAttr: &syscall.SysProcAttr{
			// Workers die with the master, and get signals only from it.
			Pdeathsig:  syscall.SIGKILL,
			Setpgid:    true,
			Chroot:     s.cfg.Chroot,
			Credential: s.cfg.Credential,
		},
	}
	err = startCmd(cmd)
	outW.Close()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", s.cfg.Path, err)
	}
	p := &proc{pid: cmd.Process.Pid, index: i, slot: slot, gen: s.gen, started: time.Now()}
	s.mu.Lock()
	s.procs[p.pid] = p
	s.mu.Unlock()
	if s.cfg.Started != nil {
		s.cfg.Started(slot, p.pid)
	}
	s.log.Info("worker started", "pid", p.pid, "index", i, "slot", slot, "generation", s.gen)
	go s.copyOutput(out, p.pid)
	go func() {
		err := cmd.Wait()
		s.exited <- exitEvent{p: p, state: cmd.ProcessState, err: err}
	}()
	return p, nil
}

// copyOutput logs each line a worker writes to stdout or stderr, tagged
// with its pid, until the worker and its children close the pipe.
func (s *Supervisor) copyOutput(r *os.File, pid int) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		level, line := parseLine(sc.Text())
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
