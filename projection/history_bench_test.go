package projection_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/projection"
)

// benchOrdersSpec is deploy/examples/orders/projection-orders.yaml without
// its change events and document schema; history is set per run.
const benchOrdersSpec = `
kind: Projection
name: orders
version: 1
source:
  aggregates: [order]
  types: [OrderPlaced, ItemAdded, OrderShipped, OrderCancelled]
key: event.id
handlers:
  OrderPlaced: "{customer: data.customer, status: 'placed', total: data.total, items: [], placed_at: now()}"
  ItemAdded: "merge(doc, {items: doc.items + [data], total: doc.total + data.price})"
  OrderShipped: "merge(doc, {status: 'shipped'})"
  OrderCancelled: "delete()"
indexes:
  by_status: status
  by_customer: customer
  by_total: {field: total, type: number}
`

// appendOrders appends docs orders of events events each (one OrderPlaced,
// then ItemAdded), 100 orders at a time with their events interleaved, as
// concurrent clients would.
func appendOrders(b *testing.B, l *testLog, docs, events int) {
	b.Helper()
	ctx := context.Background()
	for g := 0; g < docs; g += 100 {
		for e := 0; e < events; e++ {
			for o := g; o < min(g+100, docs); o++ {
				typ, data := "ItemAdded", fmt.Sprintf(`{"sku":"sku-%d-%d","price":%d.25,"qty":%d}`, o, e, e%17, 1+e%3)
				if e == 0 {
					typ, data = "OrderPlaced", fmt.Sprintf(`{"customer":"c-%d","total":0}`, o%500)
				}
				m := nats.NewMsg(fmt.Sprintf("%s.order.o-%d.%s", testPrefix, o, typ))
				m.Header.Set("ce-type", typ)
				m.Header.Set("ce-id", fmt.Sprintf("o-%d-%d", o, e))
				m.Header.Set("ce-time", time.Date(2026, 1, 1, 0, 0, 0, e*1000+o, time.UTC).Format(time.RFC3339Nano))
				m.Data = []byte(data)
				if _, err := l.js.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
			}
		}
		select {
		case <-l.js.PublishAsyncComplete():
		case <-ctx.Done():
		}
	}
}

// heap is the live Go heap after a collection.
func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkHistory folds the orders example (docs orders of events events
// each) with and without history and reports, per event of the log: the
// projection file's bytes once live (compacted), the Go heap the open
// projection holds, the rebuild rate (until every event is applied) per
// second and per CPU second of the process (the log's server included),
// the time from there to live (the
// compaction), and the p50 of history and at_seq queries. Each case
// rebuilds benchRebuilds times whatever b.N, and reports its fastest
// rebuild:
//
//	go test ./projection -run '^$' -bench BenchmarkHistory -benchtime 1x
func BenchmarkHistory(b *testing.B) {
	for _, size := range []struct{ docs, events int }{{2000, 20}, {200, 200}} {
		for _, history := range []string{"false", "true"} {
			b.Run(fmt.Sprintf("events=%d/history=%s", size.events, history), func(b *testing.B) {
				benchHistory(b, size.docs, size.events, history)
			})
		}
	}
}

// benchRebuilds is how many times each case rebuilds the projection: the
// fastest rebuild counts, the machine being shared.
const benchRebuilds = 3

// rebuildRun is one rebuild of the benchmark's projection.
type rebuildRun struct {
	m      *projection.Manager
	w      *projection.Worker
	dir    string
	wall   time.Duration // until every event is applied
	cpu    time.Duration // the process's, over wall
	settle time.Duration // from there to live
}

func benchHistory(b *testing.B, docs, events int, history string) {
	l := startLog(b)
	appendOrders(b, l, docs, events)
	total := float64(docs * events)
	spec, err := projection.Decode([]byte(benchOrdersSpec + "history: " + history + "\n"))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var run rebuildRun
	wall, cpu := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for i := range benchRebuilds {
		if i > 0 {
			run.m.Close()
		}
		run = rebuild(b, l, spec, uint64(docs*events))
		wall, cpu = min(wall, run.wall), min(cpu, run.cpu)
	}
	b.StopTimer()
	fi, err := os.Stat(filepath.Join(run.dir, "projections", "orders", "v1.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/total, "file_B/event")
	b.ReportMetric(total/wall.Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(total/cpu.Seconds(), "events/cpu_s")
	}
	b.ReportMetric(float64(run.settle.Milliseconds()), "to_live_ms")
	if history == "true" {
		h, at := historyLatency(b, run.w, docs)
		b.ReportMetric(float64(h.Microseconds()), "history_p50_µs")
		b.ReportMetric(float64(at.Microseconds()), "at_seq_p50_µs")
	}
	// The heap the open projection holds: what closing it frees.
	open := heap()
	run.m.Close()
	b.ReportMetric((float64(open)-float64(heap()))/total, "heap_B/event")
}

// rebuild runs spec in a new manager over l's log of head events, and
// returns once the version is live. The file is measured then, as a user
// sees it: the worker compacts it as it catches up, before it turns live.
func rebuild(b *testing.B, l *testLog, spec *projection.Spec, head uint64) rebuildRun {
	run := rebuildRun{dir: b.TempDir()}
	t0, cpu0 := time.Now(), cpuTime()
	run.m = startManager(b, l.managerConfig(b, run.dir, newMemStore()))
	apply(b, run.m, spec)
	w, _, err := run.m.Worker("orders", 1)
	if err != nil {
		b.Fatal(err)
	}
	checkFor(b, 5*time.Minute, func() error {
		if got := w.Applied(); got < head {
			return fmt.Errorf("applied %d, want %d", got, head)
		}
		return nil
	})
	run.w, run.wall, run.cpu = w, time.Since(t0), cpuTime()-cpu0
	checkFor(b, time.Minute, func() error {
		if st := w.Status(head); st.State != projection.StateLive {
			return fmt.Errorf("state %s, want live", st.State)
		}
		return nil
	})
	run.settle = time.Since(t0) - run.wall
	return run
}

// historyLatency times 300 history and 300 at_seq queries of random
// orders (at_seq: a random version) and returns their p50.
func historyLatency(b *testing.B, w *projection.Worker, docs int) (hist, at time.Duration) {
	b.Helper()
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(1, 2))
	var hs, as []time.Duration
	for range 300 {
		key := fmt.Sprintf("o-%d", rnd.IntN(docs))
		t0 := time.Now()
		res, err := w.Query(ctx, &projection.Query{History: &key})
		hs = append(hs, time.Since(t0))
		if err != nil || len(res.History) == 0 {
			b.Fatalf("history %s: %v", key, err)
		}
		seq := res.History[rnd.IntN(len(res.History))].Seq
		t0 = time.Now()
		res, err = w.Query(ctx, &projection.Query{Get: &key, AtSeq: seq})
		as = append(as, time.Since(t0))
		if err != nil || !strings.Contains(string(res.Doc), "customer") {
			b.Fatalf("at_seq %s %d: %v", key, seq, err)
		}
	}
	slices.Sort(hs)
	slices.Sort(as)
	return hs[len(hs)/2], as[len(as)/2]
}
