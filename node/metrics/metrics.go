package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/datamesh/datamesh/node/api"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
)

// latencyBuckets (seconds) span an os-mode append (~100 µs) to the log's
// answer timeout (5 s).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// queryBuckets add the longest min_seq waits (up to 60 s).
var queryBuckets = append(latencyBuckets[:len(latencyBuckets):len(latencyBuckets)], 30, 60)

// groupBuckets span one append to a full batch.
var groupBuckets = append(prometheus.ExponentialBuckets(1, 2, 10), eventlog.MaxBatch)

// appendOutcomes are the outcomes of an append, created at zero when the
// metrics are, so that a rate over them exists before the first error.
var appendOutcomes = []string{
	api.OutcomeStored, api.OutcomeDeduplicated,
	protocol.CodeBadRequest, protocol.CodeVersionConflict, protocol.CodeDuplicate, protocol.CodeTooLarge,
	protocol.CodeSchemaViolation, protocol.CodeNoContract, protocol.CodeInternal, protocol.CodeUnavailable,
}

// Metrics is one node's metrics: its registry, the instruments the API and
// the log update, and the collector that reads the parts at scrape
// time.
type Metrics struct {
	reg *prometheus.Registry

	appendRequests *prometheus.CounterVec
	// appendsBy holds the counter of each outcome in appendOutcomes,
	// resolved once: an append then costs a map read, not a label lookup.
	// Read-only after New.
	appendsBy      map[string]prometheus.Counter
	eventsAppended prometheus.Counter
	appendDuration prometheus.Histogram
	groupSize      prometheus.Histogram
	fsyncDuration  prometheus.Histogram

	queryRequests *prometheus.CounterVec
	queryDuration *prometheus.HistogramVec
	queryWaits    *prometheus.CounterVec
	// queries maps (projection, outcome) to its instruments. It is
	// replaced, not changed, when a pair is first seen (under queriesMu),
	// so a query reads it without a lock.
	queries   atomic.Pointer[map[queryKey]*queryInstruments]
	queriesMu sync.Mutex
}

type queryKey struct{ projection, outcome string }

type queryInstruments struct {
	requests prometheus.Counter
	duration prometheus.Observer
	waits    prometheus.Counter
}

var _ api.Observer = (*Metrics)(nil)

// New returns a node's metrics in a registry of their own: the
// instruments, the collector reading src at scrape time, and Go's and the
// process's standard metrics (go_*, process_*).
func New(src Sources, logger hclog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		appendRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: famAppendRequests.name, Help: famAppendRequests.help}, famAppendRequests.labels),
		eventsAppended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: famEventsAppended.name, Help: famEventsAppended.help}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: famAppendDuration.name, Help: famAppendDuration.help, Buckets: latencyBuckets}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: famGroupCommit.name, Help: famGroupCommit.help, Buckets: groupBuckets}),
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: famFsyncDuration.name, Help: famFsyncDuration.help, Buckets: latencyBuckets}),
		queryRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: famQueryRequests.name, Help: famQueryRequests.help}, famQueryRequests.labels),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: famQueryDuration.name, Help: famQueryDuration.help, Buckets: queryBuckets}, famQueryDuration.labels),
		queryWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: famQueryWaits.name, Help: famQueryWaits.help}, famQueryWaits.labels),
		appendsBy: make(map[string]prometheus.Counter, len(appendOutcomes)),
	}
	for _, o := range appendOutcomes {
		m.appendsBy[o] = m.appendRequests.WithLabelValues(o)
	}
	m.queries.Store(&map[queryKey]*queryInstruments{})
	m.reg.MustRegister(
		m.appendRequests, m.eventsAppended, m.appendDuration, m.groupSize, m.fsyncDuration,
		m.queryRequests, m.queryDuration, m.queryWaits,
		newCollector(src, logger.Named("metrics")),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in Prometheus's exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gatherer is the node's registry, for tests and programs that embed a
// node and expose its metrics their own way.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Append counts an append answered (api.Observer).
func (m *Metrics) Append(outcome string, events int, d time.Duration) {
	c, ok := m.appendsBy[outcome]
	if !ok {
		c = m.appendRequests.WithLabelValues(outcome)
	}
	c.Inc()
	if events > 0 {
		m.eventsAppended.Add(float64(events))
	}
	m.appendDuration.Observe(d.Seconds())
}

// Query counts a query answered (api.Observer).
func (m *Metrics) Query(projection, outcome string, waited bool, d time.Duration) {
	q := m.query(queryKey{projection, outcome})
	q.requests.Inc()
	q.duration.Observe(d.Seconds())
	if waited {
		q.waits.Inc()
	}
}

// CommitGroup records one group-commit fsync of the log: the writes it
// made durable and how long it took (eventlog.Config.OnSync).
func (m *Metrics) CommitGroup(writes int, took time.Duration) {
	m.groupSize.Observe(float64(writes))
	m.fsyncDuration.Observe(took.Seconds())
}

// query returns the instruments of k, resolving them the first time.
func (m *Metrics) query(k queryKey) *queryInstruments {
	if q, ok := (*m.queries.Load())[k]; ok {
		return q
	}
	m.queriesMu.Lock()
	defer m.queriesMu.Unlock()
	old := *m.queries.Load()
	if q, ok := old[k]; ok {
		return q
	}
	q := &queryInstruments{
		requests: m.queryRequests.WithLabelValues(k.projection, k.outcome),
		duration: m.queryDuration.WithLabelValues(k.projection, k.outcome),
		waits:    m.queryWaits.WithLabelValues(k.projection, k.outcome),
	}
	next := make(map[queryKey]*queryInstruments, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	next[k] = q
	m.queries.Store(&next)
	return q
}
