package supervisor

import (
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/socket"
)

// BenchmarkRestart measures how long the supervisor takes to replace a
// killed worker: from SIGKILL to the new worker's start.
func BenchmarkRestart(b *testing.B) {
	sock, err := socket.Listen(socket.ListenConfig{Path: filepath.Join(b.TempDir(), "s.sock"), Mode: 0o600})
	if err != nil {
		b.Fatal(err)
	}
	defer sock.Close()
	started := make(chan int, 16)
	s, err := New(Config{
		Path:    "/bin/sleep",
		Argv:    []string{"sleep", "1000"},
		Workers: 1,
		Socket:  sock,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Started: func(_, pid int) { started <- pid },
	})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	pid := <-started
	// A worker that dies within a second of its start is restarted after
	// a back-off; let each one live past that before killing it.
	wait := func() { time.Sleep(quickExit + 50*time.Millisecond) }
	wait()
	b.ResetTimer()
	for range b.N {
		syscall.Kill(pid, syscall.SIGKILL)
		pid = <-started
		b.StopTimer()
		wait()
		b.StartTimer()
	}
	b.StopTimer()
	s.Stop()
	<-done
}
