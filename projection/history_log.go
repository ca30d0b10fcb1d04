package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/eventlog"
)

// historyGets is how many direct gets a history query has in flight.
const historyGets = 256

// historyGetTimeout bounds a history query's reads when its context has
// no deadline.
const historyGetTimeout = 10 * time.Second

var _ eventLog = (*Worker)(nil)

// events reads the events at seqs with direct gets, pipelined: a history of
// 200 versions costs about one round trip, not 200.
func (w *Worker) events(ctx context.Context, seqs []uint64) ([]*Event, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, historyGetTimeout)
		defer cancel()
	}
	out := make([]*Event, len(seqs))
	for start := 0; start < len(seqs); start += historyGets {
		end := min(start+historyGets, len(seqs))
		if err := w.getEvents(ctx, seqs[start:end], out[start:end]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// getEvents sends one direct get per seq, each answered on its own reply
// subject (inbox.<index>), and fills out.
func (w *Worker) getEvents(ctx context.Context, seqs []uint64, out []*Event) error {
	nc := w.conn().nc
	inbox := nc.NewInbox()
	replies := make(chan *nats.Msg, len(seqs))
	sub, err := nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer sub.Unsubscribe()
	subject := eventlog.API + ".DIRECT.GET." + w.cfg.Stream
	for i, seq := range seqs {
		body, _ := json.Marshal(eventlog.GetRequest{Seq: seq, MaxBytes: 1 << 20})
		if err := nc.PublishRequest(subject, inbox+"."+strconv.Itoa(i), body); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
	}
	for range seqs {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return fmt.Errorf("read events: %w", ctx.Err())
		}
		i, err := strconv.Atoi(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
		if err != nil || i < 0 || i >= len(seqs) {
			return fmt.Errorf("read events: a reply on %s", m.Subject)
		}
		if st := m.Header.Get("Status"); st != "" {
			return fmt.Errorf("read event seq %d: %s %s", seqs[i], st, m.Header.Get("Description"))
		}
		out[i] = toEvent(w.cfg.SubjectPrefix, m.Header.Get(nats.JSSubject), seqs[i], m.Header, m.Data)
	}
	return nil
}
