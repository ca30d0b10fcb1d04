package meshlink

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

const (
	// meshBatch is how many events a link or an export moves at once.
	meshBatch = 500
	// meshWait bounds one wait for new events, and so how long Close waits:
	// up to meshWait and the client's 1 s of grace, as a worker's context
	// closes the connection under its fetch, whose answer then never comes.
	meshWait = time.Second
)

// fetchResets bounds how often one fetch re-creates its consumer. An
// ordered consumer re-creates the server's consumer on every Fetch, and by
// default retries that forever (it does not give up even on a closed
// connection), which once hung a node's Close while a peer was gone. One
// attempt: the worker's own loop retries, and stops with its context.
const fetchResets = 1

// fetch returns the next messages of an ordered consumer: what is there at
// once, else the first to arrive within meshWait (none on timeout).
func fetch(cons jetstream.Consumer, max int) ([]jetstream.Msg, error) {
	collect := func(b jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
		if err != nil {
			return nil, err
		}
		var out []jetstream.Msg
		for msg := range b.Messages() {
			out = append(out, msg)
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return out, err
		}
		return out, nil
	}
	msgs, err := collect(cons.FetchNoWait(max))
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	if msgs, err = collect(cons.Fetch(1, jetstream.FetchMaxWait(meshWait))); err != nil || len(msgs) == 0 {
		return msgs, err
	}
	// Whatever arrived with the first one comes in the same batch.
	more, err := collect(cons.FetchNoWait(max - 1))
	return append(msgs, more...), err
}

// backoff waits before retry n of a worker (1, 2, …); false if ctx ended.
func backoff(ctx context.Context, n int) bool {
	t := time.NewTimer(eventlog.RetryDelay(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
