package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// PIDFile is a pid file opened before anything is bound or started, so an
// unwritable path is an error before any worker exists. Its old content is
// kept until Write, so a refused start leaves a running instance's pid file
// alone.
type PIDFile struct {
	// Path is the file's name.
	Path    string
	f       *os.File
	created bool
}

// OpenPIDFile opens path for writing. Like spawn-fcgi it creates the file
// (mode 0644) and refuses an existing path that is not a regular file.
func OpenPIDFile(path string) (*PIDFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		return &PIDFile{Path: path, f: f, created: true}, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("opening pid file: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checking pid file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("pid file %s exists and isn't a regular file", path)
	}
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening pid file: %w", err)
	}
	return &PIDFile{Path: path, f: f}, nil
}

// Write replaces the file's content with pid and closes it.
func (p *PIDFile) Write(pid int) error {
	defer p.f.Close()
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	if _, err := p.f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	return nil
}

// Abandon closes the file without writing, removing it if OpenPIDFile
// created it. It does nothing on a nil PIDFile.
func (p *PIDFile) Abandon() {
	if p == nil {
		return
	}
	p.f.Close()
	if p.created {
		os.Remove(p.Path)
	}
}

// RemovePIDFile removes the pid file at path if it still holds pid, so a
// stopping instance never removes the file of one that replaced it.
func RemovePIDFile(path string, pid int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("reading pid file: %w", err)
	}
	if string(bytes.TrimSpace(b)) != strconv.Itoa(pid) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing pid file: %w", err)
	}
	return nil
}
