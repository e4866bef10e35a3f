package daemon

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// LogFile is an append-only log file that can be reopened after log
// rotation (SIGUSR1). It is safe for concurrent use.
type LogFile struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	stderr bool // Reopen moves fd 2 too
}

// OpenLogFile opens path for appending, creating it with mode 0640.
func OpenLogFile(path string) (*LogFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &LogFile{path: path, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening log file: %w", err)
	}
	return f, nil
}

// Write appends p to the current file.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// File returns the current file, for handing to a child process.
func (l *LogFile) File() *os.File {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f
}

// Reopen opens the path again and switches to the new file. On error the
// old file stays in use.
func (l *LogFile) Reopen() error {
	f, err := openAppend(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	if l.stderr {
		if err = syscall.Dup3(int(f.Fd()), 2, 0); err != nil {
			err = fmt.Errorf("pointing stderr at the log file: %w", err)
		}
	}
	l.mu.Unlock()
	return errors.Join(err, old.Close())
}

// Close closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// FollowStderr makes each Reopen also point the process's stderr (fd 2)
// at the new file, for a daemon whose stderr is the log file.
func (l *LogFile) FollowStderr() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stderr = true
}
