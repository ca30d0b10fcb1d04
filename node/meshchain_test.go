package node_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

const (
	chainBurstClients = 8  // concurrent appenders at the head
	chainSingles      = 20 // single events timed head → tail
)

// chain is N linked nodes: node i exports aggregate order to node i+1,
// which links from it with no transform and exports it on to i+2.
type chain struct {
	nodes   []*node.Node
	clients []*client.Client
	tail    jetstream.Stream // the tail's EVENTS stream, over TCP
}

// chainEnvInt reads a positive int from the environment, or def.
func chainEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkMeshChain appends a burst of events at the head of a chain of
// linked nodes (DATAMESH_CHAIN_NODES, default 5) and measures the head's
// append latencies, how long the burst (DATAMESH_CHAIN_EVENTS, default
// 2000) takes to be stored in the tail's log, then the head-to-tail time of
// single events. Default config: durability fsync.
//
//	go test -run '^$' -bench MeshChain -benchtime 1x ./node/
//	DATAMESH_CHAIN_NODES=10 go test -run '^$' -bench MeshChain -benchtime 1x ./node/
func BenchmarkMeshChain(b *testing.B) {
	n := chainEnvInt("DATAMESH_CHAIN_NODES", 5)
	k := chainEnvInt("DATAMESH_CHAIN_EVENTS", 2000)
	if n < 2 {
		b.Fatalf("DATAMESH_CHAIN_NODES=%d: a chain needs 2 nodes or more", n)
	}
	t0 := time.Now()
	ch := startChain(b, n)
	waitChainLive(b, ch, time.Minute)
	b.Logf("chain of %d nodes live in %v (durability %s)", n, time.Since(t0).Round(time.Millisecond), node.DefaultConfig().Durability)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat, ackAll, toTail := chainBurst(b, ch, k, i)
		single := chainSingleEvents(b, ch, chainSingles, i)
		hp50, hp99, _ := pct(lat)
		sp50, sp99, _ := pct(single)
		rate := float64(k) / toTail.Seconds()
		b.ReportMetric(chainMs(hp50), "head-p50-ms")
		b.ReportMetric(chainMs(hp99), "head-p99-ms")
		b.ReportMetric(rate, "burst-events/s")
		b.ReportMetric(toTail.Seconds(), "burst-to-tail-s")
		b.ReportMetric(chainMs(sp50), "single-p50-ms")
		b.Logf("chain n=%d k=%d: head p50 %.2f ms p99 %.2f ms, head acked all in %.2f s (%.0f/s); tail has all after %.2f s (%.0f events/s); single head→tail p50 %.1f ms p99 %.1f ms (%d)",
			n, k, chainMs(hp50), chainMs(hp99), ackAll.Seconds(), float64(k)/ackAll.Seconds(),
			toTail.Seconds(), rate, chainMs(sp50), chainMs(sp99), len(single))
	}
}

func chainMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startChain starts n nodes n0..n<n-1> on loopback, each a peer of its
// neighbours, applies every export, then every link.
func startChain(b *testing.B, n int) *chain {
	b.Helper()
	ch := &chain{}
	for i := range n {
		var peers []string
		if i > 0 {
			peers = append(peers, chainName(i-1))
		}
		if i < n-1 {
			peers = append(peers, chainName(i+1))
		}
		nd := startNode(b, meshConfig(b, chainName(i), peers...))
		ch.nodes = append(ch.nodes, nd)
		ch.clients = append(ch.clients, newClient(b, nd))
	}
	for i := 0; i < n-1; i++ {
		apply(b, ch.clients[i], exportYAML(chainExport(i), chainName(i+1), "order", "", ""))
	}
	for i := 1; i < n; i++ {
		link := linkYAML(fmt.Sprintf("from-%s", chainName(i-1)), chainName(i-1), ch.nodes[i-1].LeafURL(), chainExport(i-1), "")
		apply(b, ch.clients[i], link)
	}
	js, err := jetstream.New(dial(b, ch.nodes[n-1]))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ch.tail, err = js.Stream(ctx, node.DefaultStreamName); err != nil {
		b.Fatalf("tail stream: %v", err)
	}
	return ch
}

func chainName(i int) string   { return fmt.Sprintf("n%d", i) }
func chainExport(i int) string { return fmt.Sprintf("orders-%s", chainName(i)) }

// waitChainLive polls every node's mesh status until each link is
// importing and connected and each export's peer is connected.
func waitChainLive(b *testing.B, ch *chain, total time.Duration) {
	b.Helper()
	var last string
	err := nodetest.Poll(context.Background(), total, 10*time.Millisecond, func() (bool, error) {
		for i, c := range ch.clients {
			st, err := c.Mesh()
			if err != nil {
				return false, err
			}
			if i > 0 && (len(st.Links) != 1 || st.Links[0].State != protocol.LinkImporting || !st.Links[0].Connected) {
				last = fmt.Sprintf("%s links: %+v", chainName(i), st.Links)
				return false, nil
			}
			if i < len(ch.clients)-1 && (len(st.Exports) != 1 || !st.Exports[0].Connected) {
				last = fmt.Sprintf("%s exports: %+v", chainName(i), st.Exports)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		b.Fatalf("chain not live: %v; last: %s", err, last)
	}
}

// tailHead is the last seq of the tail's log.
func (ch *chain) tailHead() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := ch.tail.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// waitTail polls the tail's log every interval until its head reaches want,
// failed reports an error, or total passes; it returns when it saw it and
// the head it saw (more than want: events imported twice).
func (ch *chain) waitTail(want uint64, every, total time.Duration, failed func() error) (time.Time, uint64, error) {
	var seen uint64
	err := nodetest.Poll(context.Background(), total, every, func() (bool, error) {
		if err := failed(); err != nil {
			return false, err
		}
		h, err := ch.tailHead()
		seen = h
		return err == nil && h >= want, err
	})
	if err != nil {
		return time.Time{}, seen, fmt.Errorf("tail at %d of %d: %w; %s", seen, want, err, ch.meshSummary())
	}
	return time.Now(), seen, nil
}

// meshSummary is each link's state and position, for a stalled chain.
func (ch *chain) meshSummary() string {
	s := ""
	for i, c := range ch.clients[1:] {
		st, err := c.Mesh()
		if err != nil || len(st.Links) == 0 {
			s += fmt.Sprintf("%s: %v; ", chainName(i+1), err)
			continue
		}
		l := st.Links[0]
		s += fmt.Sprintf("%s: %s connected=%v origin %d/%d imported %d dead %d err %q; ",
			chainName(i+1), l.State, l.Connected, l.OriginSeq, l.OwnerHeadSeq, l.Imported, l.DeadLetters, l.LastError)
	}
	return s
}

// chainAppend sends one OrderPlaced append and waits for its answer.
func chainAppend(nc *nats.Conn, id string, i int) error {
	m := nats.NewMsg(protocol.SubjectAppend + ".order." + id)
	m.Header.Set(protocol.HeaderType, "OrderPlaced")
	m.Data = fmt.Appendf(nil, `{"customer":"c-%d","total":%d}`, i, 10+i%90)
	resp, err := nc.RequestMsg(m, 30*time.Second)
	if err != nil {
		return fmt.Errorf("append %s: %w", id, err)
	}
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Errorf("append %s: %s %s", id, code, resp.Data)
	}
	return nil
}

// chainBurst has chainBurstClients connections append k events in all at
// the head, one request each at a time. It returns the append latencies,
// the time until the head acknowledged all, and the time from the first
// append until the tail's log holds all k.
func chainBurst(b *testing.B, ch *chain, k, round int) (lat []time.Duration, ackAll, toTail time.Duration) {
	b.Helper()
	base, err := ch.tailHead()
	if err != nil {
		b.Fatal(err)
	}
	conns := make([]*nats.Conn, chainBurstClients)
	for w := range conns {
		conns[w] = dial(b, ch.nodes[0])
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	per := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	t0 := time.Now()
	for w, nc := range conns {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < k && failed.Load() == nil; i = int(next.Add(1) - 1) {
				s := time.Now()
				if err := chainAppend(nc, fmt.Sprintf("b%d-%d", round, i), i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				per[w] = append(per[w], time.Since(s))
			}
		})
	}
	var acked time.Time
	done := make(chan struct{})
	go func() { wg.Wait(); acked = time.Now(); close(done) }()
	at, seen, err := ch.waitTail(base+uint64(k), 2*time.Millisecond, 3*time.Minute, func() error {
		if e := failed.Load(); e != nil {
			return *e
		}
		return nil
	})
	<-done
	if err != nil {
		b.Fatalf("burst: %v", err)
	}
	if seen != base+uint64(k) {
		b.Fatalf("burst: tail head %d, want %d", seen, base+uint64(k))
	}
	for _, l := range per {
		lat = append(lat, l...)
	}
	return lat, acked.Sub(t0), at.Sub(t0)
}

// chainSingleEvents appends one event at a time at the head, each after
// the last reached the tail, and returns each one's head-to-tail time.
func chainSingleEvents(b *testing.B, ch *chain, reps, round int) []time.Duration {
	b.Helper()
	nc := dial(b, ch.nodes[0])
	out := make([]time.Duration, 0, reps)
	for r := range reps {
		base, err := ch.tailHead()
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := chainAppend(nc, fmt.Sprintf("s%d-%d", round, r), r); err != nil {
			b.Fatal(err)
		}
		at, seen, err := ch.waitTail(base+1, time.Millisecond, 30*time.Second, func() error { return nil })
		if err != nil || seen != base+1 {
			b.Fatalf("single event %d: tail head %d, want %d: %v", r, seen, base+1, err)
		}
		out = append(out, at.Sub(t0))
	}
	return out
}
