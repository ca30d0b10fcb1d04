package node

import (
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

const (
	// maxGroup is JetStream's limit on the messages of one atomic batch.
	maxGroup = 1000
	// maxGroupBytes bounds what one group stages in the server.
	maxGroupBytes = 8 << 20
	// pendingAppends is how many appends may wait for the committer.
	pendingAppends = 4096
)

// single is one checked single-event append waiting to be written.
type single struct {
	m        *nats.Msg
	agg, id  string
	expected *uint64
	reply    string
}

// groupCommitter writes single-event appends to the log with group commit
// (in fsync mode):
// the appends that arrive while a write is under way are written next as
// one JetStream atomic batch, so they share one round trip and, in fsync
// mode, one fsync. Each request still gets its own reply: if the batch is
// refused (an expected version that does not hold, a ce-id already stored),
// nothing of it was stored, and its appends are written again one by one, in
// order, each getting its own answer.
//
// One write is under way at a time, which keeps appends in arrival order.
type groupCommitter struct {
	n  *Node
	in chan *single

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func newGroupCommitter(n *Node) *groupCommitter {
	g := &groupCommitter{n: n, in: make(chan *single, pendingAppends)}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.run()
	}()
	return g
}

// submit queues s; it blocks while the queue is full (back-pressure).
func (g *groupCommitter) submit(s *single) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		g.n.respondError(s.reply, errUnavailable("the node is shutting down"))
		return
	}
	g.in <- s
}

// close writes what is queued and stops.
func (g *groupCommitter) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.in)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *groupCommitter) run() {
	group := make([]*single, 0, maxGroup)
	var carry *single
	for {
		first := carry
		if first == nil {
			var ok bool
			if first, ok = <-g.in; !ok {
				return
			}
		}
		carry = nil
		group = append(group[:0], first)
		size := len(first.m.Data)
		// JetStream checks a batch's expected versions against the log as
		// it was before the batch, so an append with an expected version
		// must not follow another append to its aggregate in the same group.
		touched := map[string]bool{first.agg + "." + first.id: true}
	gather:
		for len(group) < maxGroup && size < maxGroupBytes {
			select {
			case s, ok := <-g.in:
				if !ok {
					break gather
				}
				key := s.agg + "." + s.id
				if s.expected != nil && touched[key] {
					carry = s
					break gather
				}
				touched[key] = true
				group = append(group, s)
				size += len(s.m.Data)
			default:
				break gather
			}
		}
		if len(group) == 1 {
			g.writeOne(group[0])
		} else {
			g.writeGroup(group)
		}
	}
}

// publishWait publishes m to the stream and waits for JetStream's answer.
func (g *groupCommitter) publishWait(m *nats.Msg) (*jetstream.PubAck, error) {
	fut, err := g.n.js.PublishMsgAsync(m, jetstream.WithStallWait(DefaultAppendTimeout))
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-fut.Ok():
		return ack, nil
	case err := <-fut.Err():
		return nil, err
	}
}

func (g *groupCommitter) writeOne(s *single) {
	ack, err := g.publishWait(s.m)
	g.n.finishSingle(s, ack, err)
}

func (g *groupCommitter) writeGroup(group []*single) {
	batchID := nuid.Next()
	for i, s := range group {
		s.m.Header.Set(hdrBatchID, batchID)
		s.m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
	}
	last := group[len(group)-1].m
	last.Header.Set(hdrBatchCommit, "1")
	var err error
	for _, s := range group[:len(group)-1] {
		if err = g.n.nc.PublishMsg(s.m); err != nil {
			break
		}
	}
	var ack *jetstream.PubAck
	if err == nil {
		ack, err = g.publishWait(last)
	}
	if err == nil {
		first := ack.Sequence - uint64(len(group)) + 1
		for i, s := range group {
			g.n.respond(s.reply, AppendReply{Seq: first + uint64(i)})
		}
		return
	}
	if _, refused := err.(*jetstream.APIError); !refused {
		// A timeout or a lost connection: the batch may be stored. Writing
		// it again could store it twice, so each request hears the truth.
		e := publishError(err, nil)
		for _, s := range group {
			g.n.respondError(s.reply, e)
		}
		return
	}
	// Refused whole, so nothing is stored: write each alone for its own answer.
	for _, s := range group {
		s.m.Header.Del(hdrBatchID)
		s.m.Header.Del(hdrBatchSeq)
		s.m.Header.Del(hdrBatchCommit)
		g.writeOne(s)
	}
}

// finishSingle answers a single append from JetStream's ack or refusal.
func (n *Node) finishSingle(s *single, ack *jetstream.PubAck, err error) {
	if err == nil {
		n.respond(s.reply, AppendReply{Seq: ack.Sequence, Duplicate: ack.Duplicate})
		return
	}
	seq, _, e := n.resolveRefused(s.agg, s.id, []*nats.Msg{s.m}, s.expected, err)
	if e != nil {
		n.respondError(s.reply, e)
		return
	}
	n.respond(s.reply, AppendReply{Seq: seq, Duplicate: true})
}
