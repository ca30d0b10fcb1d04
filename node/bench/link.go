package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

const (
	linkSecret = "bench-link-secret"
	linkExport = `kind: Export
name: bench-orders
to: [recipient]
aggregates: [order]
`
	linkSpec = `kind: Link
name: bench-link
peer: owner
url: %s
export: bench-orders
transform:
  filter: "data.total >= 0"
  type: "'InvoiceRequested'"
  aggregate: "'invoice'"
  data: "{order: event.id, amount: data.total, customer: data.customer}"
`
)

// startMeshEnv starts a node named name that shares events with peer.
func startMeshEnv(ctx context.Context, o Options, name, peer string) (*env, error) {
	dir, err := os.MkdirTemp("", "datamesh-bench-*")
	if err != nil {
		return nil, err
	}
	cfg := node.DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.Listen, cfg.HTTP, cfg.LeafListen = name, dir, "127.0.0.1:-1", "", "127.0.0.1:-1"
	cfg.Peers = map[string]node.Peer{peer: {Secret: linkSecret}}
	return startEnvAt(ctx, o, cfg)
}

// runLink measures a transforming link between two nodes on loopback:
// events/s while the recipient catches up with events already exported
// (against the recipient's own pipelined appends, the raw figure), then
// the lag of each event (owner append sent → transformed event stored on
// the recipient) under a steady load.
func runLink(ctx context.Context, o Options) (Result, error) {
	r := Result{Name: "link", Unit: "events/s", Target: "ratio >= 0.5"}
	owner, err := startMeshEnv(ctx, o, "owner", "recipient")
	if err != nil {
		return r, err
	}
	defer owner.stop(true)
	rec, err := startMeshEnv(ctx, o, "recipient", "owner")
	if err != nil {
		return r, err
	}
	defer rec.stop(true)
	if _, err := owner.c.Apply([]byte(benchContract+"---\n"+linkExport), false); err != nil {
		return r, err
	}
	n := o.Sizes.Pipelined
	if err := linkCatchUp(ctx, o, owner, rec, &r); err != nil {
		return r, err
	}
	p50, p99, err := linkLag(ctx, o, owner, rec, n)
	if err != nil {
		return r, err
	}
	r.Note = fmt.Sprintf("catch-up of %d events through a transform (filter, type, aggregate, data); steady lag at %d events/s: p50 %.1f ms, p99 %.1f ms; raw: the recipient's own pipelined appends",
		n, o.Sizes.LiveRate, float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000)
	return r, nil
}

// linkAppends builds OrderPlaced append requests whose aggregate ids start
// with prefix, so that each phase of the link scenario writes its own
// aggregates.
func linkAppends(prefix string) func(i int) *nats.Msg {
	return func(i int) *nats.Msg {
		m := nats.NewMsg(protocol.SubjectAppend + ".order." + prefix + strconv.Itoa(i%1000))
		m.Header.Set(protocol.HeaderType, "OrderPlaced")
		m.Data = payload(i)
		return m
	}
}

// linkCatchUp sets r's raw figure, value and ratio: Pipelined events are
// appended on the owner first, so that the link, applied afterwards, has a
// whole backlog to import.
func linkCatchUp(ctx context.Context, o Options, owner, rec *env, r *Result) error {
	n, inflight := o.Sizes.Pipelined, o.Sizes.InFlight
	// Raw: the recipient's own pipelined appends, same payloads.
	rawTook, err := pipeline(rec.nc, n, inflight, linkAppends("r-"))
	if err != nil {
		return fmt.Errorf("raw appends: %w", err)
	}
	r.Raw = float64(n) / rawTook.Seconds()
	// The owner's log holds n events; the link then imports them all.
	if _, err := pipeline(owner.nc, n, inflight, linkAppends("o-")); err != nil {
		return fmt.Errorf("owner appends: %w", err)
	}
	if err := waitExported(ctx, owner, uint64(n)); err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := rec.c.Apply(fmt.Appendf(nil, linkSpec, owner.node.LeafURL()), false); err != nil {
		return err
	}
	if err := waitImported(ctx, rec, uint64(n)); err != nil {
		return err
	}
	r.Value = float64(n) / time.Since(t0).Seconds()
	r.Ratio = r.Value / r.Raw
	r.check(false, 0.5, r.Ratio)
	return nil
}

// linkLag appends on the owner at LiveRate events/s for LiveSecs and
// returns the p50 and p99 of the time from each send to its transformed
// event arriving on the recipient. The first backlog events were imported
// by the catch-up, so origin seq backlog+1 is the first event sent here.
func linkLag(ctx context.Context, o Options, owner, rec *env, backlog int) (p50, p99 time.Duration, err error) {
	total := max(1, int(float64(o.Sizes.LiveRate)*o.Sizes.LiveSecs))
	sent := make([]time.Time, total)
	lags := make([]time.Duration, 0, total)
	var mu sync.Mutex
	done := make(chan struct{})
	sub, err := rec.nc.Subscribe("evt.invoice.>", func(m *nats.Msg) {
		seq, err := strconv.ParseUint(m.Header.Get(protocol.HeaderOriginSeq), 10, 64)
		i := int(seq) - backlog - 1
		if err != nil || i < 0 || i >= total {
			return
		}
		mu.Lock()
		lags = append(lags, time.Since(sent[i]))
		if len(lags) == total {
			close(done)
		}
		mu.Unlock()
	})
	if err != nil {
		return 0, 0, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := rec.nc.Flush(); err != nil {
		return 0, 0, err
	}
	every := time.Second / time.Duration(o.Sizes.LiveRate)
	start := time.Now()
	for i := range total {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		m := linkAppends("l-")(i)
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if err := owner.nc.PublishMsg(m); err != nil { // no reply needed: the lag is measured on arrival
			return 0, 0, err
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return 0, 0, fmt.Errorf("link lag: %d of %d events arrived", len(lags), total)
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	mu.Lock()
	slices.Sort(lags)
	p50, p99 = percentile(lags, 50), percentile(lags, 99)
	mu.Unlock()
	return p50, p99, nil
}

func waitExported(ctx context.Context, e *env, n uint64) error {
	return pollStatus(ctx, func() (bool, error) {
		st, err := e.c.Mesh()
		if err != nil || len(st.Exports) == 0 {
			return false, err
		}
		return st.Exports[0].StreamSeq >= n, nil
	})
}

func waitImported(ctx context.Context, e *env, n uint64) error {
	return pollStatus(ctx, func() (bool, error) {
		st, err := e.c.Mesh()
		if err != nil || len(st.Links) == 0 {
			return false, err
		}
		if st.Links[0].State == protocol.LinkFailed {
			return false, fmt.Errorf("link failed: %s", st.Links[0].LastError)
		}
		return st.Links[0].Imported >= n, nil
	})
}

// pollStatus polls cond every 5 ms for up to 10 minutes.
func pollStatus(ctx context.Context, cond func() (bool, error)) error {
	return nodetest.Poll(ctx, 10*time.Minute, 5*time.Millisecond, cond)
}
