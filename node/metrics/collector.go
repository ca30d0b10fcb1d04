package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/projection"
)

// scrapeTimeout bounds what one scrape reads from the parts.
const scrapeTimeout = 5 * time.Second

// Log is the event log as the metrics read it (eventlog.Log).
type Log interface {
	State(ctx context.Context) (jetstream.StreamState, error)
}

// Projections is every projection version's status (projection.Manager).
type Projections interface {
	Statuses(ctx context.Context) []projection.Status
}

// Mesh is every link's and export's status (meshlink.Mesh).
type Mesh interface {
	Status() meshlink.Status
}

// Server is the embedded nats-server's own figures, read in process
// (*server.Server).
type Server interface {
	Varz(opts *server.VarzOptions) (*server.Varz, error)
}

var _ Server = (*server.Server)(nil)

// Sources are the parts the collector reads at scrape time; a nil one is
// left out.
type Sources struct {
	Log         Log
	Projections Projections
	Mesh        Mesh
	Server      Server
}

// projectionStates and linkStates are the values of the state label; each
// projection version or link has a series for each, 1 for its own.
var (
	projectionStates = []string{projection.StateBuilding, projection.StateLive, projection.StateFailed, projection.StateRetrying, projection.StateStopped}
	linkStates       = []string{meshlink.LinkConnecting, meshlink.LinkImporting, meshlink.LinkFailed}
)

// collector reads the parts' status at scrape time: the figures they keep
// anyway, so that nothing is counted twice.
type collector struct {
	src   Sources
	log   hclog.Logger
	descs map[*family]*prometheus.Desc
}

// scraped are the families the collector reports (the others are
// instruments).
var scraped = []*family{
	famLogMessages, famLogBytes, famLogFirstSeq, famLogLastSeq,
	famProjActive, famProjState, famProjApplied, famProjLagEvents, famProjLagSeconds,
	famProjProgress, famProjDocuments, famProjFileBytes, famProjDead,
	famLinkConnected, famLinkState, famLinkOriginSeq, famLinkLagEvents, famLinkLagSeconds,
	famLinkImported, famLinkFiltered, famLinkDead, famExportSeq, famExportConnected,
	famConnections, famSlowConsumers, famLeafnodes, famJSMemory, famJSStorage, famJSMemoryMax, famJSStorageMax,
}

func newCollector(src Sources, logger hclog.Logger) *collector {
	c := &collector{src: src, log: logger, descs: make(map[*family]*prometheus.Desc, len(scraped))}
	for _, f := range scraped {
		c.descs[f] = f.desc()
	}
	return c
}

// Describe sends every family's description (prometheus.Collector).
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range scraped {
		ch <- c.descs[f]
	}
}

// Collect reads the parts (prometheus.Collector). A part that fails to
// answer is left out of this scrape and logged.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if c.src.Log != nil {
		c.collectLog(ctx, ch)
	}
	if c.src.Projections != nil {
		c.collectProjections(ctx, ch)
	}
	if c.src.Mesh != nil {
		c.collectMesh(ch)
	}
	if c.src.Server != nil {
		c.collectServer(ch)
	}
}

// emit sends one value of f.
func (c *collector) emit(ch chan<- prometheus.Metric, f *family, v float64, labels ...string) {
	t := prometheus.GaugeValue
	if f.typ == counter {
		t = prometheus.CounterValue
	}
	ch <- prometheus.MustNewConstMetric(c.descs[f], t, v, labels...)
}

func (c *collector) collectLog(ctx context.Context, ch chan<- prometheus.Metric) {
	st, err := c.src.Log.State(ctx)
	if err != nil {
		c.log.Warn("metrics: read the log's stream", "error", err)
		return
	}
	c.emit(ch, famLogMessages, float64(st.Msgs))
	c.emit(ch, famLogBytes, float64(st.Bytes))
	c.emit(ch, famLogFirstSeq, float64(st.FirstSeq))
	c.emit(ch, famLogLastSeq, float64(st.LastSeq))
}

func (c *collector) collectProjections(ctx context.Context, ch chan<- prometheus.Metric) {
	for _, s := range c.src.Projections.Statuses(ctx) {
		l := []string{s.Name, strconv.Itoa(s.Version)}
		c.emit(ch, famProjActive, bit(s.Active), l...)
		c.emitStates(ch, famProjState, projectionStates, s.State, l)
		c.emit(ch, famProjApplied, float64(s.Applied), l...)
		c.emit(ch, famProjLagEvents, float64(s.LagEvents), l...)
		c.emit(ch, famProjLagSeconds, s.LagSeconds, l...)
		c.emit(ch, famProjProgress, s.Progress, l...)
		c.emit(ch, famProjDocuments, float64(s.Documents), l...)
		c.emit(ch, famProjFileBytes, float64(s.FileBytes), l...)
		c.emit(ch, famProjDead, float64(s.DeadLetters), l...)
	}
}

func (c *collector) collectMesh(ch chan<- prometheus.Metric) {
	st := c.src.Mesh.Status()
	for _, s := range st.Links {
		l := []string{s.Name, s.Peer}
		c.emit(ch, famLinkConnected, bit(s.Connected), l...)
		c.emitStates(ch, famLinkState, linkStates, s.State, l)
		c.emit(ch, famLinkOriginSeq, float64(s.OriginSeq), l...)
		c.emit(ch, famLinkLagEvents, float64(s.LagEvents), l...)
		c.emit(ch, famLinkLagSeconds, s.LagSeconds, l...)
		c.emit(ch, famLinkImported, float64(s.Imported), l...)
		c.emit(ch, famLinkFiltered, float64(s.Filtered), l...)
		c.emit(ch, famLinkDead, float64(s.DeadLetters), l...)
	}
	for _, s := range st.Exports {
		l := []string{s.Name, s.Peer}
		c.emit(ch, famExportSeq, float64(s.ExportedSeq), l...)
		c.emit(ch, famExportConnected, bit(s.Connected), l...)
	}
}

// emitStates sends one series per known state, 1 for state; a state not
// in the list gets a series of its own.
func (c *collector) emitStates(ch chan<- prometheus.Metric, f *family, states []string, state string, l []string) {
	known := false
	for _, s := range states {
		known = known || s == state
		c.emit(ch, f, bit(s == state), append(l[:len(l):len(l)], s)...)
	}
	if !known && state != "" {
		c.emit(ch, f, 1, append(l[:len(l):len(l)], state)...)
	}
}

func (c *collector) collectServer(ch chan<- prometheus.Metric) {
	v, err := c.src.Server.Varz(nil)
	if err != nil {
		c.log.Warn("metrics: read the server's varz", "error", err)
		return
	}
	c.emit(ch, famConnections, float64(v.Connections))
	c.emit(ch, famSlowConsumers, float64(v.SlowConsumers))
	c.emit(ch, famLeafnodes, float64(v.Leafs))
	if js := v.JetStream; js.Stats != nil {
		c.emit(ch, famJSMemory, float64(js.Stats.Memory))
		c.emit(ch, famJSStorage, float64(js.Stats.Store))
	}
	if js := v.JetStream; js.Config != nil {
		c.emit(ch, famJSMemoryMax, float64(js.Config.MaxMemory))
		c.emit(ch, famJSStorageMax, float64(js.Config.MaxStore))
	}
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
