package eventlog

import (
	"testing"
	"time"
)

func TestRetryDelayIsCapped(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		9: 25600 * time.Millisecond, 10: 30 * time.Second, 1000: 30 * time.Second} {
		if got := RetryDelay(n); got != want {
			t.Errorf("retry %d: got %v, want %v", n, got, want)
		}
	}
}
