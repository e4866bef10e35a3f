package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// startTimeout is how long the first workers may take to get ready before
// a start fails.
const startTimeout = 5 * time.Second

// defaultWorker is the default worker program: magnet-worker beside the
// magnetd binary exe, else the one in $PATH (a package may install them
// apart). With -c it is the path beside exe, looked up inside the chroot.
func defaultWorker(exe, chroot string) string {
	beside := filepath.Join(filepath.Dir(exe), "magnet-worker")
	if chroot != "" {
		return beside
	}
	if _, err := os.Stat(beside); err != nil {
		if p, err := exec.LookPath("magnet-worker"); err == nil {
			return p
		}
	}
	return beside
}

// checkOptions checks, before magnetd detaches, what its workers would
// otherwise only find wrong once they run: --docroot and -d. The worker
// program was checked by programPath.
func checkOptions(o *options) error {
	if o.docroot != "" {
		if err := readableDir(o.docroot); err != nil {
			return fmt.Errorf("--docroot: %w", err)
		}
	}
	if o.dir != "" && o.chroot == "" {
		if err := readableDir(o.dir); err != nil {
			return fmt.Errorf("-d/--chdir: %w", err)
		}
	}
	if o.chroot != "" {
		if err := readableDir(o.chroot); err != nil {
			return fmt.Errorf("-c/--chroot: %w", err)
		}
	}
	for _, f := range []struct{ flag, path string }{{"--log-file", o.logFile}, {"--access-log", o.accessLog}, {"-P/--pid-file", o.pidFile}} {
		if f.path == "" {
			continue
		}
		if err := isDir(filepath.Dir(f.path)); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

// readableDir checks that path is a directory this process can list.
func readableDir(path string) error {
	if err := isDir(path); err != nil {
		return err
	}
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.Readdirnames(1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

func isDir(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	return nil
}

// testConfig is -t: it reports the checked options and looks up the users,
// without binding or starting anything.
func testConfig(o *options, path string) error {
	for _, w := range o.warnings {
		fmt.Fprintf(os.Stderr, "magnetd: warning: %s\n", w)
	}
	if _, _, err := identities(o, true); err != nil {
		return err
	}
	fmt.Printf("magnetd: the configuration is ok: worker program %s, %d worker(s)\n", path, o.workers)
	return nil
}
