package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

// StateRetrying is a worker that could not read the log or write its
// store: it waits, then resumes from its checkpoint. Its status says why
// and how many attempts in a row failed.
const StateRetrying = "retrying"

// consumerResets bounds how often the ordered consumer re-creates its
// server consumer by itself. By default nats.go retries that without end
// (it does not give up even on a closed connection): one attempt, and the
// worker's own loop retries with a bounded backoff and stops on Close.
const consumerResets = 1

// errStopped ends a run for good: the context ended or the worker failed
// (an event under on_error: stop), as already recorded.
var errStopped = errors.New("stopped")

// run reads the log until Close or a failure. A read or a store write that
// fails makes the worker retrying: it backs off and resumes from its
// checkpoint.
func (w *Worker) run(ctx context.Context) {
	// Closing its connection as the run ends unblocks any request in flight.
	defer context.AfterFunc(ctx, func() {
		if c := w.conn(); c.own {
			c.nc.Close()
		}
	})()
	for ctx.Err() == nil {
		if err := w.reconnect(); err != nil {
			if !w.backoff(ctx, eventlog.RetryDelay(w.retrying(err))) {
				return
			}
			continue
		}
		err := w.consume(ctx, w.readWholeLog(ctx))
		if err == nil {
			continue // caught up reading the whole log: follow the filter
		}
		if ctx.Err() != nil || errors.Is(err, errStopped) {
			return
		}
		n := w.retrying(err)
		if !w.backoff(ctx, eventlog.RetryDelay(n)) {
			return
		}
	}
}

// retrying records a failed attempt and returns how many failed in a row.
func (w *Worker) retrying(err error) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts++
	w.state, w.lastError = StateRetrying, err.Error()
	w.log.Warn("projection interrupted; retrying from its checkpoint", "attempt", w.attempts,
		"retry_in", eventlog.RetryDelay(w.attempts), "error", err)
	w.notify()
	return w.attempts
}

// recovered turns a retrying worker back to building once it made
// progress (a commit, or nothing left to read). w.mu must be held.
func (w *Worker) recovered() {
	if w.state == StateRetrying {
		w.state, w.lastError, w.attempts = StateBuilding, "", 0
		w.log.Info("projection resumed", "applied_seq", w.applied.Load())
	}
}

// backoff waits d, or less if Retry asks; false if ctx ended.
func (w *Worker) backoff(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-w.kick:
		return true
	case <-t.C:
		return true
	}
}

// consumeErrors returns the error handler of a consume and the channel
// it reports to. A missing heartbeat is left to the ordered consumer,
// which resets itself once (consumerResets) and reports that reset's
// failure; every other error ends the consume for the worker to retry.
func consumeErrors() (jetstream.PullConsumeOpt, <-chan error) {
	errs := make(chan error, 1)
	h := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			return
		}
		select {
		case errs <- err:
		default:
		}
	})
	return h, errs
}

// readError names a failure to read the log.
func readError(what string, err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%s: the worker's connection to the log is closed: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// storeError names a failed write of the projection's file.
func storeError(err error) error {
	return fmt.Errorf("write the projection file (the worker resumes from its checkpoint): %w", err)
}

// logConn is the worker's connection to the log.
type logConn struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	own bool // the worker closes it
}

func (w *Worker) conn() *logConn { return w.nc.Load() }

// reconnect replaces a closed connection, if the worker can open one.
func (w *Worker) reconnect() error {
	old := w.conn()
	if !old.nc.IsClosed() || w.cfg.Connect == nil {
		return nil
	}
	nc, err := w.cfg.Connect()
	if err != nil {
		return fmt.Errorf("reconnect to the log: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("reconnect to the log: %w", err)
	}
	w.nc.Store(&logConn{nc: nc, js: js, own: true})
	w.log.Info("projection reconnected to the log")
	return nil
}
