package metrics

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/api"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

type fakeLog struct{ st jetstream.StreamState }

func (f fakeLog) State(context.Context) (jetstream.StreamState, error) { return f.st, nil }

type fakeProjections []projection.Status

func (f fakeProjections) Statuses(context.Context) []projection.Status { return f }

type fakeMesh meshlink.Status

func (f fakeMesh) Status() meshlink.Status { return meshlink.Status(f) }

type fakeServer server.Varz

func (f *fakeServer) Varz(*server.VarzOptions) (*server.Varz, error) {
	v := server.Varz(*f)
	return &v, nil
}

// fakeSources has one of everything, so that every family has a series.
func fakeSources() Sources {
	return Sources{
		Log: fakeLog{jetstream.StreamState{Msgs: 10, Bytes: 2048, FirstSeq: 1, LastSeq: 10}},
		Projections: fakeProjections{{Name: "orders", Version: 2, Active: true, State: projection.StateBuilding,
			Applied: 4, Head: 10, LagEvents: 6, LagSeconds: 1.5, Progress: 0.4, Documents: 3, FileBytes: 4096, DeadLetters: 1}},
		Mesh: fakeMesh{
			Links: []meshlink.LinkStatus{{Name: "orders-in", Peer: "orders", State: meshlink.LinkImporting, Connected: true,
				OriginSeq: 7, LagEvents: 2, LagSeconds: 0.25, Imported: 5, Filtered: 1, DeadLetters: 2}},
			Exports: []meshlink.ExportStatus{{Name: "public", Peer: "billing", Connected: true, ExportedSeq: 9}},
		},
		Server: &fakeServer{Connections: 4, SlowConsumers: 1, Leafs: 2, JetStream: server.JetStreamVarz{
			Stats:  &server.JetStreamStats{Memory: 100, Store: 5000},
			Config: &server.JetStreamConfig{MaxMemory: 1 << 20, MaxStore: 1 << 30}}},
	}
}

// gather returns the families of m's registry by name.
func gather(t testing.TB, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value is the value of the series of name whose labels include want.
func value(t testing.TB, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

// Every family is exported with the type it is declared with, and nothing
// else under datamesh_.
func TestEveryFamilyIsExported(t *testing.T) {
	m := New(fakeSources(), hclog.NewNullLogger())
	m.Append(api.OutcomeStored, 1, time.Millisecond)
	m.Query("orders", api.OutcomeOK, true, time.Millisecond)
	m.CommitGroup(3, time.Millisecond)
	mfs := gather(t, m)
	declared := map[string]string{}
	for _, f := range families {
		declared[f.name] = f.typ
		mf, ok := mfs[f.name]
		if !ok {
			t.Errorf("%s is declared but not exported", f.name)
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != f.typ {
			t.Errorf("%s: got type %s, want %s", f.name, got, f.typ)
		}
	}
	for name := range mfs {
		if strings.HasPrefix(name, "datamesh_") && declared[name] == "" {
			t.Errorf("%s is exported but not declared in families", name)
		}
	}
	for _, std := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := mfs[std]; !ok {
			t.Errorf("no %s: the standard collectors are missing", std)
		}
	}
}

// The collector reports the parts' figures as they are.
func TestCollectorReadsTheParts(t *testing.T) {
	mfs := gather(t, New(fakeSources(), hclog.NewNullLogger()))
	proj := map[string]string{"projection": "orders", "version": "2"}
	link := map[string]string{"link": "orders-in", "peer": "orders"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"datamesh_log_messages", nil, 10},
		{"datamesh_log_bytes", nil, 2048},
		{"datamesh_log_first_seq", nil, 1},
		{"datamesh_log_last_seq", nil, 10},
		{"datamesh_projection_active", proj, 1},
		{"datamesh_projection_state", map[string]string{"projection": "orders", "state": "building"}, 1},
		{"datamesh_projection_state", map[string]string{"projection": "orders", "state": "live"}, 0},
		{"datamesh_projection_state", map[string]string{"projection": "orders", "state": "failed"}, 0},
		{"datamesh_projection_applied_seq", proj, 4},
		{"datamesh_projection_lag_events", proj, 6},
		{"datamesh_projection_lag_seconds", proj, 1.5},
		{"datamesh_projection_progress_ratio", proj, 0.4},
		{"datamesh_projection_documents", proj, 3},
		{"datamesh_projection_file_bytes", proj, 4096},
		{"datamesh_projection_dead_letters", proj, 1},
		{"datamesh_link_connected", link, 1},
		{"datamesh_link_state", map[string]string{"link": "orders-in", "state": "importing"}, 1},
		{"datamesh_link_state", map[string]string{"link": "orders-in", "state": "failed"}, 0},
		{"datamesh_link_origin_seq", link, 7},
		{"datamesh_link_lag_events", link, 2},
		{"datamesh_link_lag_seconds", link, 0.25},
		{"datamesh_link_events_imported_total", link, 5},
		{"datamesh_link_events_filtered_total", link, 1},
		{"datamesh_link_dead_letters", link, 2},
		{"datamesh_export_exported_seq", map[string]string{"export": "public", "peer": "billing"}, 9},
		{"datamesh_export_connected", map[string]string{"export": "public", "peer": "billing"}, 1},
		{"datamesh_server_connections", nil, 4},
		{"datamesh_server_slow_consumers_total", nil, 1},
		{"datamesh_server_leafnodes", nil, 2},
		{"datamesh_jetstream_memory_bytes", nil, 100},
		{"datamesh_jetstream_storage_bytes", nil, 5000},
		{"datamesh_jetstream_memory_limit_bytes", nil, 1 << 20},
		{"datamesh_jetstream_storage_limit_bytes", nil, 1 << 30},
	} {
		if got := value(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(mfs["datamesh_projection_state"].GetMetric()); n != len(projectionStates) {
		t.Errorf("datamesh_projection_state: got %d series, want one per state (%d)", n, len(projectionStates))
	}
}

// The instruments count what they are told, by outcome.
func TestInstruments(t *testing.T) {
	m := New(Sources{}, hclog.NewNullLogger())
	m.Append(api.OutcomeStored, 1, time.Millisecond)
	m.Append(api.OutcomeStored, 100, 2*time.Millisecond)
	m.Append(api.OutcomeDeduplicated, 0, time.Millisecond)
	m.Append(protocol.CodeVersionConflict, 0, time.Millisecond)
	m.Append("made_up", 0, time.Millisecond) // an outcome not known in advance
	m.Query("orders", api.OutcomeOK, false, time.Millisecond)
	m.Query("orders", api.OutcomeOK, true, time.Millisecond)
	m.Query("orders", protocol.CodeNotUpToDate, true, time.Second)
	m.Query("", protocol.CodeNotFound, false, time.Millisecond)
	m.CommitGroup(1, time.Millisecond)
	m.CommitGroup(40, time.Millisecond)
	mfs := gather(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"datamesh_append_requests_total", map[string]string{"outcome": "stored"}, 2},
		{"datamesh_append_requests_total", map[string]string{"outcome": "deduplicated"}, 1},
		{"datamesh_append_requests_total", map[string]string{"outcome": "version_conflict"}, 1},
		{"datamesh_append_requests_total", map[string]string{"outcome": "made_up"}, 1},
		{"datamesh_append_requests_total", map[string]string{"outcome": "schema_violation"}, 0}, // exists at 0
		{"datamesh_events_appended_total", nil, 101},
		{"datamesh_append_duration_seconds", nil, 5},
		{"datamesh_query_requests_total", map[string]string{"projection": "orders", "outcome": "ok"}, 2},
		{"datamesh_query_requests_total", map[string]string{"projection": "orders", "outcome": "not_up_to_date"}, 1},
		{"datamesh_query_requests_total", map[string]string{"projection": "", "outcome": "not_found"}, 1},
		{"datamesh_query_min_seq_waits_total", map[string]string{"projection": "orders", "outcome": "ok"}, 1},
		{"datamesh_query_min_seq_waits_total", map[string]string{"projection": "orders", "outcome": "not_up_to_date"}, 1},
		{"datamesh_query_duration_seconds", map[string]string{"projection": "orders", "outcome": "ok"}, 2},
		{"datamesh_group_commit_batch_size", nil, 2},
	} {
		if got := value(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := mfs["datamesh_group_commit_batch_size"].GetMetric()[0].GetHistogram()
	if h.GetSampleSum() != 41 {
		t.Errorf("group commit sizes: got sum %v, want 41", h.GetSampleSum())
	}
}

// An append or a query, once its outcome was seen, allocates nothing in
// the metrics: the hot paths stay as they were.
func TestObserverDoesNotAllocate(t *testing.T) {
	m := New(Sources{}, hclog.NewNullLogger())
	m.Query("orders", api.OutcomeOK, false, time.Millisecond) // resolves the pair
	for name, f := range map[string]func(){
		"append": func() { m.Append(api.OutcomeStored, 1, time.Millisecond) },
		"query":  func() { m.Query("orders", api.OutcomeOK, false, time.Millisecond) },
		"group":  func() { m.CommitGroup(8, time.Millisecond) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: got %v allocations per call, want 0", name, n)
		}
	}
}

// Two nodes' metrics do not share a registry.
func TestRegistriesAreSeparate(t *testing.T) {
	a, b := New(Sources{}, hclog.NewNullLogger()), New(Sources{}, hclog.NewNullLogger())
	a.Append(api.OutcomeStored, 3, time.Millisecond)
	if got := value(t, gather(t, b), "datamesh_events_appended_total", nil); got != 0 {
		t.Fatalf("b counts a's appends: got %v, want 0", got)
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func BenchmarkAppend(b *testing.B) {
	m := New(Sources{}, hclog.NewNullLogger())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Append(api.OutcomeStored, 1, time.Millisecond)
		}
	})
}

func BenchmarkQuery(b *testing.B) {
	m := New(Sources{}, hclog.NewNullLogger())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Query("orders", api.OutcomeOK, false, time.Millisecond)
		}
	})
}
