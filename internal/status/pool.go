// Package status renders a pool's status page in PHP-FPM's vocabulary
// (text, JSON, and Prometheus or OpenMetrics exposition), from the shared
// scoreboard alone, so that the master and any worker can serve it.
package status

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/magnet-fcgi/magnet/internal/scoreboard"
	"github.com/magnet-fcgi/magnet/internal/shdict"
)

// Pool is what the master knows about its pool. Update copies it onto the
// board's header, where workers find it too.
type Pool struct {
	Name          string            // pool name, e.g. "www"
	PM            string            // process manager, e.g. "static"
	Start         time.Time         // when the pool started; zero: when the board was created
	Listener      *os.File          // the listen socket, for the listen queue figures; nil: none
	Board         *scoreboard.Board // the workers' scoreboard
	SlowThreshold time.Duration     // the workers' slow log timeout, for the page; 0: off or unknown
	Shared        []*shdict.Dict    // magnetd's --shared dictionaries (shared.go)

	mu        sync.Mutex
	saturated bool // every worker was busy at the last update
}

// Update refreshes the board's header: pool name, process manager, start
// time and slow threshold from p, and the listen queue figures from the
// kernel. It also counts "max children reached": once per stretch of
// successive updates that find no worker idle while connections wait in
// the listen queue (without a listener, while no worker is idle). The
// master calls it every second (see Run). A listen queue the kernel does
// not report is left at 0 and the error is returned after the rest was
// updated.
func (p *Pool) Update() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.Board
	b.SetPool(p.Name, p.PM)
	if !p.Start.IsZero() {
		b.SetStart(p.Start)
	}
	b.SetSlowThreshold(p.SlowThreshold)

	var err error
	waiting := true
	if p.Listener != nil {
		var queued, size uint64
		queued, size, err = ListenQueue(p.Listener)
		if err != nil {
			err = fmt.Errorf("status: %w", err)
		}
		b.SetListenQueue(queued, size)
		waiting = queued > 0
	}

	idle, active := 0, 0
	for i := range b.Len() {
		switch s := b.Snapshot(i); {
		case s.State == scoreboard.Free:
		case counted(s.State):
			active++
		default:
			idle++
		}
	}
	b.NoteActive(uint64(active))
	full := active > 0 && idle == 0 && waiting
	if full && !p.saturated {
		b.AddMaxChildrenReached()
	}
	p.saturated = full
	return err
}

// Run calls Update every interval until ctx is done. Errors are passed to
// report (which may be nil); each distinct error is reported once in a row.
func (p *Pool) Run(ctx context.Context, interval time.Duration, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		err := p.Update()
		switch {
		case err == nil:
			last = ""
		case err.Error() != last && report != nil:
			last = err.Error()
			report(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// counted reports whether a worker in state s counts as active, as PHP-FPM
// counts every process that is not waiting for a request. A worker that is
// starting is counted as idle.
func counted(s scoreboard.State) bool {
	return s == scoreboard.Busy || s == scoreboard.Finishing
}
