package projection_test

import (
	"context"
	"fmt"
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
// projection file's bytes, the Go heap the open projection holds, the
// rebuild rate, and the p50 of history and at_seq queries. Each case runs
// once whatever b.N:
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

func benchHistory(b *testing.B, docs, events int, history string) {
	l := startLog(b)
	appendOrders(b, l, docs, events)
	total := float64(docs * events)
	dir := b.TempDir()
	before := heap()
	b.ResetTimer()
	t0 := time.Now()
	m := startManager(b, l.managerConfig(b, dir, newMemStore()))
	spec, err := projection.Decode([]byte(benchOrdersSpec + "history: " + history + "\n"))
	if err != nil {
		b.Fatal(err)
	}
	apply(b, m, spec)
	w, _, err := m.Worker("orders", 1)
	if err != nil {
		b.Fatal(err)
	}
	checkFor(b, 5*time.Minute, func() error {
		if got := w.Applied(); got < uint64(docs*events) {
			return fmt.Errorf("applied %d, want %d", got, docs*events)
		}
		return nil
	})
	rebuild := time.Since(t0)
	b.StopTimer()
	held := heap() - before
	fi, err := os.Stat(filepath.Join(dir, "projections", "orders", "v1.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/total, "file_B/event")
	b.ReportMetric(float64(held)/total, "heap_B/event")
	b.ReportMetric(total/rebuild.Seconds(), "events/s")
	if history == "true" {
		h, at := historyLatency(b, w, docs)
		b.ReportMetric(float64(h.Microseconds()), "history_p50_µs")
		b.ReportMetric(float64(at.Microseconds()), "at_seq_p50_µs")
	}
	runtime.KeepAlive(m)
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
