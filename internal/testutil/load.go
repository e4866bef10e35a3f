package testutil

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Load keeps clients sending requests until Stop, as a web server under
// traffic would, and counts what they get: the tests of reloads and
// restarts run one and then check that nothing failed. A client is a
// function that sends one request (over a fresh connection or its own
// kept-alive one) and says whether it was answered as expected.
type Load struct {
	mu      sync.Mutex
	ok      int
	failed  int
	retried int
	errs    []string
	changed chan struct{} // closed and replaced when ok grows
	stopc   chan struct{}
	stop    sync.Once
	wg      sync.WaitGroup
}

// NewLoad returns a Load without clients.
func NewLoad() *Load {
	return &Load{changed: make(chan struct{}), stopc: make(chan struct{})}
}

// StartLoad returns a Load running n copies of request.
func StartLoad(n int, request func() error) *Load {
	l := NewLoad()
	for range n {
		l.Add(request)
	}
	return l
}

// Add starts a client that calls request until Stop. A nil error counts
// as an answer, any other as a failure.
func (l *Load) Add(request func() error) {
	l.AddClient(request, nil)
}

// AddClient is Add for a client that keeps state between requests, such
// as a kept-alive connection: end (if not nil) is called after the
// client's last request, before Stop returns, so that an idle connection
// does not hold a worker once the load is over.
func (l *Load) AddClient(request func() error, end func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if end != nil {
			defer end()
		}
		for {
			select {
			case <-l.stopc:
				return
			default:
			}
			l.count(request())
		}
	}()
}

// CountRetry counts a request that a client sent again on a new
// connection because its kept-alive one was closed before any answer, as
// nginx retries a cached upstream connection. The retry's outcome is what
// the request returns; the count only shows in String.
func (l *Load) CountRetry() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retried++
}

func (l *Load) count(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed++
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err.Error())
		}
		return
	}
	l.ok++
	close(l.changed)
	l.changed = make(chan struct{})
}

// Answered returns the number of requests answered so far.
func (l *Load) Answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

// WaitAnswered waits until n requests have been answered in all, failing
// the test after timeout: a test uses it to know the load is flowing
// before it acts, and that it still flows after.
func (l *Load) WaitAnswered(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		ok, failed, changed := l.ok, l.failed, l.changed
		l.mu.Unlock()
		if ok >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("load: %d of %d requests answered after %v (%d failed: %q)", ok, n, timeout, failed, l.errors())
		}
	}
}

func (l *Load) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// Stop ends the clients, waits for their last requests, and returns the
// counts: answered, failed, and the first few errors. It may be called
// again (a deferred Stop after a failed test).
func (l *Load) Stop() (ok, failed int, errs []string) {
	l.stop.Do(func() { close(l.stopc) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.failed, l.errs
}

// String sums the load up for a test's log.
func (l *Load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("ok=%d failed=%d retried=%d errors=%q", l.ok, l.failed, l.retried, l.errs)
}
