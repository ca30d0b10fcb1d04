package eventlog

import "time"

// Backoff of the node's readers and writers of the log that retry on their
// own (projection workers, link and export workers): the first retry
// waits RetryMin, each next one twice as long, up to RetryMax.
const (
	RetryMin = 100 * time.Millisecond
	RetryMax = 30 * time.Second
)

// RetryDelay is the wait before retry n (1, 2, …).
func RetryDelay(n int) time.Duration {
	d := RetryMin
	for i := 1; i < n && d < RetryMax; i++ {
		d *= 2
	}
	return min(d, RetryMax)
}
