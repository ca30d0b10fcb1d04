package node_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// scrape reads n's /metrics with Prometheus's text-format parser.
func scrape(t testing.TB, n *node.Node) metricFamilies {
	t.Helper()
	resp, err := http.Get(n.MonitorURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

type metricFamilies map[string]*dto.MetricFamily

// get returns the value of the series of name whose labels include those
// given as name=value pairs (a histogram's: its count), and whether there
// is one.
func (m metricFamilies) get(name string, labels ...string) (float64, bool) {
	mf, ok := m[name]
	if !ok {
		return 0, false
	}
next:
	for _, s := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range s.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue(), true
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount()), true
		case s.Untyped != nil:
			return s.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// want checks the series of name with labels against want.
func (m metricFamilies) want(t testing.TB, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := m.get(name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v: got %v, want %v", name, labels, got, want)
	}
}

// wantAtLeast checks the series of name with labels is at least min.
func (m metricFamilies) wantAtLeast(t testing.TB, min float64, name string, labels ...string) {
	t.Helper()
	got, ok := m.get(name, labels...)
	if !ok || got < min {
		t.Errorf("%s%v: got %v (found %v), want at least %v", name, labels, got, ok, min)
	}
}

// histogramSum is the sum of the histogram name's observations.
func (m metricFamilies) histogramSum(name string) float64 {
	if mf, ok := m[name]; ok && len(mf.GetMetric()) == 1 {
		return mf.GetMetric()[0].GetHistogram().GetSampleSum()
	}
	return -1
}

// waitMetric scrapes n until the series of name with labels is want.
func waitMetric(t testing.TB, n *node.Node, want float64, name string, labels ...string) {
	t.Helper()
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got, ok := scrape(t, n).get(name, labels...); !ok || got != want {
			return fmt.Errorf("%s%v: got %v (found %v), want %v", name, labels, got, ok, want)
		}
		return nil
	})
}

// /metrics serves the node's figures, and they move with the work done.
func TestMetricsMoveWithTheWork(t *testing.T) {
	n := newNode(t) // fsync mode: appends go through group commit
	c := newClient(t, n)
	applyOrders(t, c)

	before := scrape(t, n)
	before.want(t, 0, "datamesh_events_appended_total")
	before.want(t, 0, "datamesh_append_requests_total", "outcome", "stored")
	before.want(t, 0, "datamesh_append_requests_total", "outcome", "schema_violation") // every outcome from the start

	appendForMetrics(t, c)
	const events = 7 // 3 + 1 + the batch's 3
	waitMetric(t, n, events, "datamesh_projection_applied_seq", "projection", "orders", "version", "1")

	// Queries: two answered at once (the second's min_seq is applied),
	// one that waits for its min_seq (beyond the log's head: it waits for
	// the log to get there, and times out not up to date), one for a
	// projection that does not exist.
	query(t, c, "orders", projection.Query{Get: ptr("o-1")})
	query(t, c, "orders", projection.Query{Get: ptr("o-2"), MinSeq: events})
	_, err := c.Query("orders", projection.Query{Get: ptr("o-3"), MinSeq: events + 100, TimeoutMS: 50})
	wantAPIError(t, err, protocol.CodeNotUpToDate)
	_, err = c.Query("nope", projection.Query{Get: ptr("o-1")})
	wantAPIError(t, err, protocol.CodeNotFound)

	m := scrape(t, n)
	m.want(t, 5, "datamesh_append_requests_total", "outcome", "stored")
	m.want(t, 1, "datamesh_append_requests_total", "outcome", "deduplicated")
	m.want(t, 1, "datamesh_append_requests_total", "outcome", "schema_violation")
	m.want(t, 1, "datamesh_append_requests_total", "outcome", "version_conflict")
	m.want(t, 0, "datamesh_append_requests_total", "outcome", "duplicate")
	m.want(t, events, "datamesh_events_appended_total")
	m.want(t, 8, "datamesh_append_duration_seconds")
	// Group commit synced each write alone (the client waits for each
	// reply): five single appends (one found stored: deduplicated, still
	// synced before its answer) and the batch. Refused appends store
	// nothing and wait for no fsync.
	m.want(t, 6, "datamesh_group_commit_batch_size")
	if got := m.histogramSum("datamesh_group_commit_batch_size"); got != 6 {
		t.Errorf("group commit sizes: got sum %v, want 6", got)
	}

	m.want(t, events, "datamesh_log_messages")
	m.want(t, 1, "datamesh_log_first_seq")
	m.want(t, events, "datamesh_log_last_seq")
	m.wantAtLeast(t, 1, "datamesh_log_bytes")

	proj := []string{"projection", "orders", "version", "1"}
	m.want(t, 1, "datamesh_projection_active", proj...)
	m.want(t, 1, "datamesh_projection_state", append(proj, "state", "live")...)
	m.want(t, 0, "datamesh_projection_state", append(proj, "state", "building")...)
	m.want(t, events, "datamesh_projection_applied_seq", proj...)
	m.want(t, 0, "datamesh_projection_lag_events", proj...)
	m.want(t, 1, "datamesh_projection_progress_ratio", proj...)
	m.want(t, 4, "datamesh_projection_documents", proj...) // o-1 … o-4
	m.wantAtLeast(t, 1, "datamesh_projection_file_bytes", proj...)
	m.want(t, 0, "datamesh_projection_dead_letters", proj...)

	m.want(t, 2, "datamesh_query_requests_total", "projection", "orders", "outcome", "ok")
	m.want(t, 1, "datamesh_query_requests_total", "projection", "orders", "outcome", "not_up_to_date")
	m.want(t, 1, "datamesh_query_requests_total", "projection", "", "outcome", "not_found")
	m.want(t, 1, "datamesh_query_min_seq_waits_total", "projection", "orders", "outcome", "not_up_to_date")
	m.want(t, 0, "datamesh_query_min_seq_waits_total", "projection", "", "outcome", "not_found")
	m.want(t, 2, "datamesh_query_duration_seconds", "projection", "orders", "outcome", "ok")
	if _, ok := m.get("datamesh_query_requests_total", "projection", "nope"); ok {
		t.Error("a query for a projection that does not exist made a series of its own")
	}

	checkServerMetrics(t, m)
}

// A node without an HTTP port has no metrics, and works as before.
func TestMetricsOffWithoutHTTP(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.HTTP = ""
	n := startNode(t, cfg)
	if n.MonitorURL() != "" {
		t.Fatalf("got monitor %q, want none", n.MonitorURL())
	}
	placeOrder(t, newClient(t, n), "o-1", "alice", 1)
}

// Links and exports report their figures on each side of a mesh, and two
// nodes in one process keep their own metrics.
func TestMetricsMesh(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing"))
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)
	apply(t, oc, exportYAML("public-orders", "billing", "order", "OrderPlaced", "card_number"))
	apply(t, bc, `kind: EventType
name: InvoiceRequested
aggregate: invoice
version: 1
schema:
  type: object
  required: [amount]
  properties:
    amount: {type: number, minimum: 15}
`)
	apply(t, bc, linkYAML("orders-to-billing", "orders", orders.LeafURL(), "public-orders", `  type: "'InvoiceRequested'"
  aggregate: "'invoice'"
  data: "{amount: data.total}"
`))
	placeOrders(t, oc, 0, 10) // totals 10..19: the first five break billing's contract
	link := []string{"link", "orders-to-billing", "peer", "orders"}
	waitMetric(t, billing, 10, "datamesh_link_origin_seq", link...)
	waitMetric(t, billing, 0, "datamesh_link_lag_events", link...)

	b := scrape(t, billing)
	b.want(t, 1, "datamesh_link_connected", link...)
	b.want(t, 1, "datamesh_link_state", append(link, "state", "importing")...)
	b.want(t, 5, "datamesh_link_events_imported_total", link...)
	b.want(t, 5, "datamesh_link_dead_letters", link...)
	b.want(t, 5, "datamesh_log_messages")
	b.want(t, 0, "datamesh_append_requests_total", "outcome", "stored") // imports are not API appends
	b.wantAtLeast(t, 1, "datamesh_server_leafnodes")

	// The exporter records its figures once its batch is acknowledged,
	// which billing may read before: wait for them.
	export := []string{"export", "public-orders", "peer", "billing"}
	waitMetric(t, orders, 10, "datamesh_export_exported_seq", export...)
	o := scrape(t, orders)
	o.want(t, 1, "datamesh_export_connected", export...)
	o.want(t, 10, "datamesh_append_requests_total", "outcome", "stored")
	o.want(t, 10, "datamesh_log_messages")
	o.wantAtLeast(t, 1, "datamesh_server_leafnodes")
}

// appendForMetrics makes appends of every outcome, 7 events stored in
// all: 3 stored, one stored then deduplicated, one refused in the
// handler (schema_violation), one refused by the log (version_conflict),
// one batch of 3.
func appendForMetrics(t testing.TB, c *client.Client) {
	t.Helper()
	for i := 1; i <= 3; i++ {
		placeOrder(t, c, fmt.Sprintf("o-%d", i), "alice", 10)
	}
	for range 2 {
		if _, err := c.Append("order", "o-4", "OrderPlaced", []byte(`{"customer":"bob","total":4}`), client.AppendOptions{ID: "evt-4"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Append("order", "o-5", "OrderPlaced", []byte(`{"customer":"","total":-1}`), client.AppendOptions{})
	wantAPIError(t, err, protocol.CodeSchemaViolation)
	_, err = c.Append("order", "o-1", "OrderPlaced", []byte(`{"customer":"alice","total":1}`), client.AppendOptions{ExpectedVersion: client.Expect(99)})
	wantAPIError(t, err, protocol.CodeVersionConflict)
	batch, err := c.AppendBatch("order", "o-1", orderEvents(3, "b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if batch.LastSeq != 7 {
		t.Fatalf("batch: got last seq %d, want 7", batch.LastSeq)
	}
}

// checkServerMetrics checks the embedded server's figures.
func checkServerMetrics(t testing.TB, m metricFamilies) {
	t.Helper()
	m.wantAtLeast(t, 2, "datamesh_server_connections") // the node's own and the client's
	m.want(t, 0, "datamesh_server_slow_consumers_total")
	m.want(t, 0, "datamesh_server_leafnodes")
	m.wantAtLeast(t, 1, "datamesh_jetstream_storage_bytes")
	m.wantAtLeast(t, 1, "datamesh_jetstream_storage_limit_bytes")
	m.wantAtLeast(t, 1, "go_goroutines")
}
