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
