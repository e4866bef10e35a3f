package supervisor

import (
	"io"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// agedOS is the real OS with a clock that a benchmark can move forward.
type agedOS struct {
	realOS
	skew atomic.Int64
}

func (o *agedOS) Now() time.Time { return time.Now().Add(time.Duration(o.skew.Load())) }

// BenchmarkRestart measures how long the supervisor takes to replace a
// killed worker: from SIGKILL to the new worker's start.
func BenchmarkRestart(b *testing.B) {
	board := newChanBoard()
	aged := &agedOS{}
	s, err := New(Config{
		Path:    "/bin/sleep",
		Argv:    []string{"sleep", "1000"},
		Workers: 1,
		Socket:  listen(b),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Board:   board,
		OS:      aged,
	})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	pid := (<-board.started)[1]
	b.ResetTimer()
	for range b.N {
		// A worker that dies within quickExit of its start is restarted
		// after a back-off; each one has lived long enough on this clock.
		aged.skew.Add(int64(quickExit))
		syscall.Kill(pid, syscall.SIGKILL)
		pid = (<-board.started)[1]
	}
	b.StopTimer()
	s.Stop()
	<-done
}
