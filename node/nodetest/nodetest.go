package nodetest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Poll calls cond every interval until it reports done, returns an error
// (which ends the wait at once), ctx ends, or total passes.
func Poll(ctx context.Context, total, every time.Duration, cond func() (done bool, err error)) error {
	deadline := time.Now().Add(total)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		done, err := cond()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met after %v", total)
		}
		t.Reset(every)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// CheckFor polls fn until it returns nil, and fails t with fn's last error
// if total passes first.
func CheckFor(t testing.TB, total, every time.Duration, fn func() error) {
	t.Helper()
	var last error
	err := Poll(context.Background(), total, every, func() (bool, error) {
		last = fn()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("condition not met after %v: %v", total, last)
	}
}
