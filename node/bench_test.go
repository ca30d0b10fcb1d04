package node_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/projection"
)

// benchEvents is the size of the rebuild benchmark's log; set
// DATAMESH_BENCH_EVENTS to change it.
func benchEvents() int {
	if v, err := strconv.Atoi(os.Getenv("DATAMESH_BENCH_EVENTS")); err == nil && v > 0 {
		return v
	}
	return 500_000
}

// BenchmarkRebuild replays a log of order events (~200 B each) into the
// orders projection (expression handlers, three indexes) and reports events/s.
//
//	go test -run '^$' -bench Rebuild -benchtime 1x ./node/
func BenchmarkRebuild(b *testing.B) {
	total := benchEvents()
	n := newNode(b)
	c := newClient(b, n)
	applyOrderContracts(b, c)
	start := time.Now()
	var last uint64
	const perBatch = 100
	for i := 0; i < total/perBatch; i++ {
		evs := make([]map[string]any, perBatch)
		for j := range evs {
			k := i*perBatch + j
			if k%4 == 0 {
				evs[j] = map[string]any{"type": "OrderPlaced", "data": map[string]any{"customer": fmt.Sprintf("customer-%06d", k%5000), "total": 0, "email": "someone@example.com"}}
			} else {
				evs[j] = map[string]any{"type": "ItemAdded", "data": map[string]any{"sku": fmt.Sprintf("sku-%08d", k), "price": k % 97}}
			}
		}
		r, err := c.AppendBatch("order", fmt.Sprintf("o-%06d", i), evs, nil)
		if err != nil {
			b.Fatal(err)
		}
		last = r.LastSeq
	}
	b.Logf("appended %d events in %v", last, time.Since(start))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("rebuild%d", i)
		spec := fmt.Sprintf(`kind: Projection
name: %s
version: 1
source: {aggregates: [order], types: [OrderPlaced, ItemAdded]}
key: event.id
handlers:
  OrderPlaced: "{customer: data.customer, status: 'placed', total: data.total, count: 0}"
  ItemAdded: "merge(doc, {total: doc.total + data.price, count: doc.count + 1})"
indexes:
  by_customer: customer
  by_total: {field: total, type: number}
`, name)
		t0 := time.Now()
		if _, err := c.Apply([]byte(spec), false); err != nil {
			b.Fatal(err)
		}
		st := waitLive(b, c, name, last)
		el := time.Since(t0)
		b.ReportMetric(float64(last)/el.Seconds(), "events/s")
		b.Logf("rebuilt %d events into %d documents in %v (%.0f events/s), file %s", last, st.Documents, el, float64(last)/el.Seconds(), strconv.FormatInt(st.FileBytes, 10))
	}
}

// BenchmarkPublishToQueryable measures the time from an append to the
// moment a query with its seq as min_seq answers, one request at a time.
func BenchmarkPublishToQueryable(b *testing.B) {
	n := newNode(b)
	c := newClient(b, n)
	applyOrders(b, c)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r, err := c.Append("order", fmt.Sprintf("o-%d", i), "OrderPlaced", []byte(`{"customer":"alice","total":12.5}`), client.AppendOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Query("orders", projection.Query{Get: ptr(fmt.Sprintf("o-%d", i)), MinSeq: r.Seq}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// latencies measures fn n times and returns p50 and p99, stopping early
// when stop reports true (checked every 50 calls).
func latencies(b *testing.B, n int, fn func(i int) error, stop func() bool) (p50, p99 time.Duration, count int) {
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		if i%50 == 0 && stop != nil && stop() {
			break
		}
		t0 := time.Now()
		if err := fn(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	if len(lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat)
}

// BenchmarkRebuildImpact measures append and query latency (one request at
// a time) with no rebuild running, then while v2 of a projection rebuilds
// over the same log, and reports the ratios.
//
//	go test -run '^$' -bench RebuildImpact -benchtime 1x ./node/
func BenchmarkRebuildImpact(b *testing.B) {
	total := benchEvents()
	n := newNode(b)
	c := newClient(b, n)
	applyOrderContracts(b, c)
	if _, err := c.Apply(countsSpec(1, ""), false); err != nil {
		b.Fatal(err)
	}
	last := fillLog(b, c, total/1000, 1000)
	waitLive(b, c, "counts", last)
	appendOne := func(i int) error {
		_, err := c.Append("order", fmt.Sprintf("bench-%d", i), "OrderPlaced", []byte(`{"customer":"bench","total":1}`), client.AppendOptions{})
		return err
	}
	queryOne := func(i int) error {
		_, err := c.Query("counts", projection.Query{Get: ptr(fmt.Sprintf("bulk-%04d", i%(total/1000)))})
		return err
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a50, a99, _ := latencies(b, 2000, appendOne, nil)
		q50, q99, _ := latencies(b, 2000, queryOne, nil)
		if _, err := c.Apply(countsSpec(2+i, ""), false); err != nil {
			b.Fatal(err)
		}
		building := func() bool { return status(b, c, "counts", 2+i).State != projection.StateBuilding }
		// Appends and v1 gets alternate while v2 rebuilds, so both are measured.
		var as, qs []time.Duration
		latencies(b, 100000, func(j int) error {
			t0 := time.Now()
			if err := appendOne(1_000_000 + j); err != nil {
				return err
			}
			t1 := time.Now()
			err := queryOne(j)
			as, qs = append(as, t1.Sub(t0)), append(qs, time.Since(t1))
			return err
		}, building)
		ra50, ra99, na := pct(as)
		rq50, rq99, nq := pct(qs)
		b.Logf("appends: idle p50 %v p99 %v; during rebuild p50 %v p99 %v (%d samples)", a50, a99, ra50, ra99, na)
		b.Logf("v1 gets: idle p50 %v p99 %v; during rebuild p50 %v p99 %v (%d samples)", q50, q99, rq50, rq99, nq)
		b.ReportMetric(float64(ra50)/float64(a50), "append-p50-ratio")
		b.ReportMetric(float64(ra99)/float64(a99), "append-p99-ratio")
		if nq > 0 {
			b.ReportMetric(float64(rq50)/float64(q50), "get-p50-ratio")
		}
	}
}

func pct(d []time.Duration) (p50, p99 time.Duration, n int) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100], len(d)
}
