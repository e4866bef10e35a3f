package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.pid")

	p, err := OpenPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p.Abandon()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Abandon left the file it created: %v", err)
	}

	os.WriteFile(path, []byte("4242\n"), 0o644)
	p, err = OpenPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "4242\n" {
		t.Errorf("open truncated the old content: %q", b)
	}
	p.Abandon()
	if b, _ := os.ReadFile(path); string(b) != "4242\n" {
		t.Errorf("Abandon changed an existing file: %q", b)
	}

	p, _ = OpenPIDFile(path)
	if err := p.Write(17); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "17\n" {
		t.Errorf("pid file = %q, want 17", b)
	}
	RemovePIDFile(path, 18)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("RemovePIDFile removed another process's file")
	}
	if err := RemovePIDFile(path, 17); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("RemovePIDFile left the file")
	}

	if _, err := OpenPIDFile(dir); err == nil {
		t.Errorf("OpenPIDFile accepted a directory")
	}
	if _, err := OpenPIDFile(filepath.Join(dir, "no", "m.pid")); err == nil {
		t.Errorf("OpenPIDFile accepted a missing directory")
	}
}

func TestLogFileReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	l, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("one\n"))
	os.Rename(path, path+".1")
	l.Write([]byte("two\n"))
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("three\n"))
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "one\ntwo\n" || string(cur) != "three\n" {
		t.Errorf("rotated %q, current %q", old, cur)
	}
}
