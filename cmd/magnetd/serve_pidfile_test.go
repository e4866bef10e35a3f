package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPIDFileNone(t *testing.T) {
	p, err := openPIDFile("")
	if p != nil || err != nil {
		t.Fatalf("openPIDFile(\"\") = %v, %v", p, err)
	}
	// Without -P every step is a no-op.
	p.abandon()
	if err := p.write(1); err != nil {
		t.Error(err)
	}
	if err := p.remove(); err != nil {
		t.Error(err)
	}
	if childPIDFile("") != nil {
		t.Error("childPIDFile without -P")
	}
}

func TestPIDFileWriteRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.pid")
	p, err := openPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.remove(); err != nil || !exists(path) {
		t.Errorf("remove before write: %v, removed %v", err, !exists(path))
	}
	if err := p.write(4242); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "4242\n" {
		t.Errorf("pid file %q", b)
	}
	if err := p.remove(); err != nil || exists(path) {
		t.Errorf("remove: %v, left %v", err, exists(path))
	}
}

func TestPIDFileReplacedIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.pid")
	p, err := openPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.write(4242); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("4343\n"), 0o644) // another instance's now
	if err := p.remove(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "4343\n" {
		t.Errorf("pid file %q", b)
	}
}

func TestPIDFileAbandon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.pid")
	p, err := openPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p.abandon()
	p.abandon() // a second time does nothing
	if exists(path) {
		t.Errorf("abandon left the file it created")
	}
	os.WriteFile(path, []byte("12345\n"), 0o644)
	if p, err = openPIDFile(path); err != nil {
		t.Fatal(err)
	}
	p.abandon()
	if b, _ := os.ReadFile(path); string(b) != "12345\n" {
		t.Errorf("abandon changed an existing file to %q", b)
	}
	// Abandoned, it is neither written nor removed.
	if err := p.write(1); err != nil || p.remove() != nil {
		t.Errorf("write or remove after abandon: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "12345\n" {
		t.Errorf("pid file now %q", b)
	}
}

func TestPIDFileOpenError(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "missing", "m.pid"), dir} {
		if _, err := openPIDFile(path); err == nil || !strings.HasPrefix(err.Error(), "-P/--pid-file: ") {
			t.Errorf("openPIDFile(%s): %v", path, err)
		}
	}
}

func TestChildPIDFile(t *testing.T) {
	// The parent wrote the child's pid; the child removes it at exit.
	path := filepath.Join(t.TempDir(), "m.pid")
	os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	p := childPIDFile(path)
	if err := p.write(1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("a child wrote its pid file: %q", b)
	}
	if err := p.remove(); err != nil || exists(path) {
		t.Errorf("remove: %v, left %v", err, exists(path))
	}
}
