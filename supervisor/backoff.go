package supervisor

import "time"

const (
	// quickExit is how long a worker must live for its exit to count as
	// normal rather than as a crash at start.
	quickExit = time.Second
	// backoffBase is the first restart delay after a quick exit; it doubles
	// with each further quick exit in a row.
	backoffBase = 100 * time.Millisecond
	// backoffMax caps the restart delay.
	backoffMax = 10 * time.Second
)

// backoff returns the restart delay after n quick exits in a row (n >= 1).
func backoff(n int) time.Duration {
	d := backoffBase
	for i := 1; i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}
