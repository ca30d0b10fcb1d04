package eventlog

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pendingAppends is how many appends may wait for the committer.
const pendingAppends = 4096

// Committer writes single-event appends to the log with group commit (in
// fsync mode): the appends that arrive while a write is under way are
// written next as one JetStream atomic batch, so they share one round trip
// and one fsync. Each request still gets its own answer: if the batch is
// refused (an expected version that does not hold, a ce-id already stored),
// nothing of it was stored, and its appends are written again one by one,
// in order, each getting its own answer.
//
// One write is under way at a time, which keeps appends in arrival order.
type Committer struct {
	l   *Log
	cfg CommitterConfig
	log hclog.Logger
	in  chan *Append

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// CommitterConfig is what a Committer reports to its owner.
type CommitterConfig struct {
	// OnGroup, if set, is told the number of appends of each write (1 for
	// an append written alone) before the write. It runs on the
	// committer's goroutine, so it must not block: the node's metrics
	// count it.
	OnGroup func(appends int)
}

// NewCommitter returns a committer that writes to l once started.
func NewCommitter(l *Log, cfg CommitterConfig, logger hclog.Logger) *Committer {
	return &Committer{l: l, cfg: cfg, log: logger.Named("committer"), in: make(chan *Append, pendingAppends)}
}

// Start runs the committer until Close. It writes what is queued before it
// stops, so it does not end with ctx: Close ends it.
func (g *Committer) Start(context.Context) error {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.run()
	}()
	return nil
}

// Append queues a; it blocks while the queue is full (back-pressure).
func (g *Committer) Append(a *Append) {
	if a.Expected != nil {
		g.l.setExpectedVersion(a.Msg, a.Aggregate, a.ID, *a.Expected)
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		a.Done(0, false, ErrClosed)
		return
	}
	g.in <- a
}

// Close writes what is queued and stops. Safe to call twice.
func (g *Committer) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.in)
	}
	g.mu.Unlock()
	g.wg.Wait()
	return nil
}

func (g *Committer) run() {
	group := make([]*Append, 0, MaxBatch)
	var carry *Append
	for {
		first := carry
		if first == nil {
			var ok bool
			if first, ok = <-g.in; !ok {
				return
			}
		}
		group, carry = g.gather(append(group[:0], first))
		if g.cfg.OnGroup != nil {
			g.cfg.OnGroup(len(group))
		}
		if len(group) == 1 {
			g.writeOne(group[0])
		} else {
			g.writeGroup(group)
		}
	}
}

// gather adds to group the appends queued now, up to a batch's limits. It
// returns an append that must wait for the next group, if any: JetStream
// checks a batch's expected versions against the log as it was before the
// batch, so an append with an expected version must not follow another
// append to its aggregate in the same group.
func (g *Committer) gather(group []*Append) ([]*Append, *Append) {
	size := len(group[0].Msg.Data)
	touched := map[string]bool{group[0].Aggregate + "." + group[0].ID: true}
	for len(group) < MaxBatch && size < MaxBatchBytes {
		select {
		case a, ok := <-g.in:
			if !ok {
				return group, nil
			}
			key := a.Aggregate + "." + a.ID
			if a.Expected != nil && touched[key] {
				return group, a
			}
			touched[key] = true
			group = append(group, a)
			size += len(a.Msg.Data)
		default:
			return group, nil
		}
	}
	return group, nil
}

func (g *Committer) writeOne(a *Append) {
	ack, err := g.l.publishWait(a.Msg)
	g.l.finish(a, ack, err)
}

func (g *Committer) writeGroup(group []*Append) {
	msgs := make([]*nats.Msg, len(group))
	for i, a := range group {
		msgs[i] = a.Msg
	}
	commit, err := stage(g.l.nc, msgs)
	var ack *jetstream.PubAck
	if err == nil {
		ack, err = g.l.publishWait(commit)
	}
	if err == nil {
		first := ack.Sequence - uint64(len(group)) + 1
		for i, a := range group {
			a.Done(first+uint64(i), false, nil)
		}
		return
	}
	if _, refused := err.(*jetstream.APIError); !refused {
		// A timeout or a lost connection: the batch may be stored. Writing
		// it again could store it twice, so each request hears the truth.
		err = publishError(err, nil)
		for _, a := range group {
			a.Done(0, false, err)
		}
		return
	}
	// Refused whole, so nothing is stored: write each alone for its own answer.
	unstage(msgs)
	for _, a := range group {
		g.writeOne(a)
	}
}
