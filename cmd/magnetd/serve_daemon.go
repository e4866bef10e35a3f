package main

import (
	"fmt"
	"os"

	"github.com/magnet-fcgi/magnet/internal/daemon"
)

// handOff daemonizes: it starts the program at path with args (magnetd
// itself again) detached, passing it the socket, writes the daemon's pid to
// the pid file and waits until the daemon's workers run; then the first
// process exits 0 and the daemon owns the socket file, the pid file and
// the private directory. When the daemon fails, handOff removes them and
// returns the daemon's error.
func (l *listener) handOff(path string, args []string, logFile *daemon.LogFile) error {
	var stderr *os.File
	if logFile != nil {
		stderr = logFile.File()
	}
	d, err := daemon.Start(path, args, l.sock, stderr)
	if err != nil {
		l.abandon()
		return err
	}
	if err := l.pid.write(d.PID()); err != nil {
		fmt.Fprintf(os.Stderr, "magnetd: %v\n", err)
	}
	l.sock.File.Close() // the daemon owns the socket now
	if err := d.Wait(); err != nil {
		if l.pid != nil {
			daemon.RemovePIDFile(l.pid.path, d.PID())
		}
		l.sock.Unlink()
		l.removeTempDir()
		return err
	}
	fmt.Printf("magnetd: master started successfully: PID: %d\n", d.PID())
	if logFile == nil {
		fmt.Fprintln(os.Stderr, "magnetd: note: no --log-file, so the daemon's log is discarded (or use -n)")
	}
	return nil
}
