package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

// crashNode is a node of the crash test in a process of its own, restarted
// on the same data and config after each SIGKILL.
type crashNode struct {
	t      testing.TB
	name   string
	data   string
	config string // envNodeConfig
	p      *nodeProcess
	nc     *nats.Conn
	c      *client.Client
	starts int
}

// newCrashNode writes name's config (a fixed leaf address if leaf is not
// "", the peers) and starts it.
func newCrashNode(t testing.TB, name, leaf string, peers ...string) *crashNode {
	t.Helper()
	dir := t.TempDir()
	n := &crashNode{t: t, name: name, data: filepath.Join(dir, "data"), config: filepath.Join(dir, "node.yaml")}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "name: %s\nleaf_listen: %q\npeers:\n", name, leaf)
	for _, peer := range peers {
		fmt.Fprintf(&cfg, "  %s:\n    secret: %s\n", peer, testSecret)
	}
	if err := os.WriteFile(n.config, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && n.p != nil {
			t.Logf("end of the log of node %s (start %d):\n%s", n.name, n.starts, n.p.tail(6000))
		}
	})
	n.start()
	return n
}

// start runs the node (a new client port each time) and connects to it.
func (n *crashNode) start() {
	n.t.Helper()
	n.starts++
	n.p = mustStartNodeProcessEnv(n.t, n.data, node.DurabilityFsync, envNodeConfig+"="+n.config)
	nc, err := nats.Connect(n.p.url, nats.NoReconnect())
	if err != nil {
		n.t.Fatalf("connect to %s: %v", n.name, err)
	}
	n.nc, n.c = nc, client.New(nc).WithTimeout(40*time.Second)
}

// kill sends SIGKILL and waits until the process is gone.
func (n *crashNode) kill() {
	n.nc.Close()
	n.p.kill()
}

// mustStartNodeProcessEnv is startNodeProcessEnv failing t on error.
func mustStartNodeProcessEnv(t testing.TB, dataDir, durability string, env ...string) *nodeProcess {
	t.Helper()
	p, err := startNodeProcessEnv(t, dataDir, durability, env...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pipelinedLoad is appendLoad's clients sharing a few connections, so
// that each connection carries many appends in flight.
type pipelinedLoad struct {
	*appendLoad
	wg    sync.WaitGroup
	conns []*nats.Conn
}

// startPipelinedLoad starts conns connections with perConn clients each,
// sending small events (the test reads the logs whole after each round).
func startPipelinedLoad(t testing.TB, url string, round, conns, perConn int) *pipelinedLoad {
	t.Helper()
	l := &pipelinedLoad{appendLoad: &appendLoad{url: url, cycle: round, small: true}}
	for c := range conns {
		nc, err := nats.Connect(url, nats.NoReconnect())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		l.conns = append(l.conns, nc)
		for k := c * perConn; k < (c+1)*perConn; k++ {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.client(nc, k)
			}()
		}
	}
	return l
}

// waitAcks waits until the load has n acks (or its clients all stopped).
func (l *pipelinedLoad) waitAcks(t testing.TB, n int64) {
	t.Helper()
	err := nodetest.Poll(context.Background(), 30*time.Second, time.Millisecond, func() (bool, error) {
		return l.count.Load() >= n, nil
	})
	if err != nil {
		t.Fatalf("round %d: %d acks, want %d: %v; errors %v", l.cycle, l.count.Load(), n, err, first(l.errs, 3))
	}
}

// stop ends the load: killed says its node was just SIGKILLed (errors
// expected); otherwise the clients stop after their current append. It
// returns every acknowledged append.
func (l *pipelinedLoad) stop(t testing.TB) []ackedEvent {
	t.Helper()
	l.halt.Store(true)
	l.wg.Wait()
	for _, nc := range l.conns {
		nc.Close()
	}
	if len(l.errs) > 0 {
		t.Fatalf("round %d: %d errors before the kill, the first: %v", l.cycle, len(l.errs), l.errs[0])
	}
	return l.acked
}

// waitLink waits until the recipient's link has imported every event of
// the owner's log up to head.
func waitLink(t testing.TB, recipient *crashNode, link string, head uint64) {
	t.Helper()
	nodetest.CheckFor(t, 40*time.Second, 10*time.Millisecond, func() error {
		st, err := recipient.c.Mesh()
		if err != nil {
			return err
		}
		for _, l := range st.Links {
			if l.Name == link {
				if l.OriginSeq < head {
					return fmt.Errorf("link %s at origin seq %d, want %d: %+v", link, l.OriginSeq, head, l)
				}
				return nil
			}
		}
		return fmt.Errorf("no link %s: %+v", link, st.Links)
	})
}

// checkImport fails t unless imported (the recipient's log) holds every
// event of owned (the owner's log, all exported) exactly once, by origin
// seq, with its id, type and data.
func checkImport(t testing.TB, owner, link string, owned, imported map[uint64]protocol.Event) {
	t.Helper()
	var problems []string
	seen := make(map[uint64]uint64, len(imported))
	for seq, ev := range imported {
		o := ev.Origin
		if o == nil || o.Node != owner || o.Link != link {
			problems = append(problems, fmt.Sprintf("local seq %d: origin %+v, want node %s link %s", seq, o, owner, link))
			continue
		}
		if other, dup := seen[o.Seq]; dup {
			problems = append(problems, fmt.Sprintf("origin seq %d imported twice: local seqs %d and %d", o.Seq, other, seq))
		}
		seen[o.Seq] = seq
		want, ok := owned[o.Seq]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("origin seq %d (local seq %d): no such event on the owner", o.Seq, seq))
		case ev.AggregateID != want.AggregateID || ev.Type != want.Type || o.ID != want.ID || string(ev.Data) != string(want.Data):
			problems = append(problems, fmt.Sprintf("origin seq %d: got %s %s id %s, want %s %s id %s",
				o.Seq, ev.AggregateID, ev.Type, o.ID, want.AggregateID, want.Type, want.ID))
		}
	}
	for seq := range owned {
		if _, ok := seen[seq]; !ok {
			problems = append(problems, fmt.Sprintf("owner seq %d never imported", seq))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		t.Errorf("the import differs from the export (%d owner events, %d imported) in %d ways:\n%s",
			len(owned), len(imported), len(problems), strings.Join(first(problems, 15), "\n"))
	}
}

// lastSeq is the highest seq of a log read by readStoredLog.
func lastSeq(stored map[uint64]protocol.Event) uint64 {
	var last uint64
	for seq := range stored {
		last = max(last, seq)
	}
	return last
}

// logCache is a node's log read so far: each round reads only what is new
// (reading the whole log every round took most of a round under -race),
// and the end of the test reads it whole again (sameLog).
type logCache struct {
	stored map[uint64]protocol.Event
	next   uint64
}

// refresh reads the events from c.next on into c and returns the log.
func (c *logCache) refresh(t testing.TB, nc *nats.Conn) map[uint64]protocol.Event {
	t.Helper()
	if c.stored == nil {
		c.stored, c.next = make(map[uint64]protocol.Event), 1
	}
	for seq, ev := range readStoredLog(t, nc, c.next) {
		c.stored[seq] = ev
	}
	c.next = lastSeq(c.stored) + 1
	return c.stored
}

// sameLog fails t unless the node's whole log, read again, is the one
// read round by round: nothing read in an earlier round changed since.
func sameLog(t testing.TB, name string, nc *nats.Conn, c *logCache) {
	t.Helper()
	whole := readStoredLog(t, nc, 1)
	var diffs []string
	for seq, ev := range c.stored {
		if got, ok := whole[seq]; !ok {
			diffs = append(diffs, fmt.Sprintf("seq %d (%s/%s) gone", seq, ev.Aggregate, ev.AggregateID))
		} else if got.ID != ev.ID || string(got.Data) != string(ev.Data) {
			diffs = append(diffs, fmt.Sprintf("seq %d changed: id %s, was %s", seq, got.ID, ev.ID))
		}
	}
	for seq := range whole {
		if _, ok := c.stored[seq]; !ok {
			diffs = append(diffs, fmt.Sprintf("seq %d not read before", seq))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Errorf("the log of %s read whole at the end differs from the one read round by round in %d events: %v", name, len(diffs), first(diffs, 10))
	}
}
