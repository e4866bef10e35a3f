package main

import (
	"fmt"
	"os"

	"github.com/magnet-fcgi/magnet/internal/daemon"
)

// pidFile is -P's file through a start: opened before the socket is bound,
// so that an unwritable path fails the start before anything exists;
// written once the master's pid is known; removed at exit only if it still
// holds that pid. Its methods do nothing on a nil pidFile (no -P).
type pidFile struct {
	path    string
	f       *daemon.PIDFile // open until written or abandoned
	written int             // the pid written, 0 before
}

// openPIDFile opens path for writing; it returns nil when path is empty.
func openPIDFile(path string) (*pidFile, error) {
	if path == "" {
		return nil, nil
	}
	f, err := daemon.OpenPIDFile(path)
	if err != nil {
		return nil, fmt.Errorf("-P/--pid-file: %w", err)
	}
	return &pidFile{path: path, f: f}, nil
}

// childPIDFile is a daemon child's -P file, which its parent wrote with the
// child's pid; nil when path is empty.
func childPIDFile(path string) *pidFile {
	if path == "" {
		return nil
	}
	return &pidFile{path: path, written: os.Getpid()}
}

// write writes pid into the file opened by openPIDFile and closes it.
func (p *pidFile) write(pid int) error {
	if p == nil || p.f == nil {
		return nil
	}
	f := p.f
	p.f = nil
	if err := f.Write(pid); err != nil {
		return fmt.Errorf("-P/--pid-file: %w", err)
	}
	p.written = pid
	return nil
}

// abandon closes a file not yet written, removing it if openPIDFile
// created it, so a refused start leaves a running instance's file alone.
func (p *pidFile) abandon() {
	if p == nil || p.f == nil {
		return
	}
	p.f.Abandon()
	p.f = nil
}

// remove removes the file if it still holds the pid written, so that a
// stopping master never removes the file of one that replaced it.
func (p *pidFile) remove() error {
	if p == nil || p.written == 0 {
		return nil
	}
	return daemon.RemovePIDFile(p.path, p.written)
}
