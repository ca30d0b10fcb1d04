package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/projection"
)

// flakyConnect opens in-process connections to l, records them, and
// refuses to while down is set.
type flakyConnect struct {
	l     *testLog
	down  atomic.Bool
	mu    sync.Mutex
	conns []*nats.Conn
}

func (f *flakyConnect) connect() (*nats.Conn, error) {
	if f.down.Load() {
		return nil, errors.New("the log is down")
	}
	nc, err := nats.Connect("", nats.InProcessServer(f.l.srv), nats.NoReconnect())
	if err == nil {
		f.mu.Lock()
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
	}
	return nc, err
}

// cut closes every connection opened so far.
func (f *flakyConnect) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, nc := range f.conns {
		nc.Close()
	}
}

// waitStatus polls the status of orders v1 until ok accepts it.
func waitStatus(t testing.TB, m *projection.Manager, ok func(projection.Status) error) projection.Status {
	t.Helper()
	var st projection.Status
	checkFor(t, 20*time.Second, func() error {
		w, _, err := m.Worker("orders", 1)
		if err != nil {
			return err
		}
		st = w.Status(0)
		return ok(st)
	})
	return st
}

// A worker whose connection to the log is cut says so in its status,
// retrying with a bounded backoff; it resumes once it can connect again,
// and Close returns at once whatever it is doing.
func TestWorkerRetriesWhenTheLogIsCut(t *testing.T) {
	l := startLog(t)
	l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	f := &flakyConnect{l: l}
	cfg := l.managerConfig(t, t.TempDir(), newMemStore())
	cfg.Connect = f.connect
	m := startManager(t, cfg)
	apply(t, m, specVersion(t, 1, ""))
	waitState(t, m, "orders", 1, projection.StateLive)

	f.down.Store(true)
	f.cut()
	st := waitStatus(t, m, func(st projection.Status) error {
		if st.State != projection.StateRetrying || st.Attempts < 2 || !strings.Contains(st.LastError, "the log is down") {
			return fmt.Errorf("got state %s, %d attempts, error %q; want retrying, at least 2 attempts, the reason", st.State, st.Attempts, st.LastError)
		}
		return nil
	})
	t.Logf("while cut: %s after %d attempts: %s", st.State, st.Attempts, st.LastError)
	w, _, _ := m.Worker("orders", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := w.Query(ctx, &projection.Query{Get: ptrTo("o-1"), MinSeq: 2}); !errors.Is(err, projection.ErrNotUpToDate) {
		t.Fatalf("query while cut: got %v, want ErrNotUpToDate", err)
	}

	f.down.Store(false)
	seq := l.append(t, "o-2", "OrderPlaced", `{"customer":"c-2","total":4}`)
	if err := w.Retry(); err != nil { // cuts the backoff short
		t.Fatalf("retry: %v", err)
	}
	waitStatus(t, m, func(st projection.Status) error {
		if st.State != projection.StateLive || st.Applied != seq || st.LastError != "" || st.Attempts != 0 {
			return fmt.Errorf("got %s at %d (%d attempts, %q), want live at %d", st.State, st.Applied, st.Attempts, st.LastError, seq)
		}
		return nil
	})

	// Cut again: Close returns promptly while the worker retries.
	f.down.Store(true)
	f.cut()
	waitState(t, m, "orders", 1, projection.StateRetrying)
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s while the worker retried")
	}
}

func ptrTo[T any](v T) *T { return &v }
