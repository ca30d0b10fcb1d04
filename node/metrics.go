package node

import (
	"net/http"

	"github.com/datamesh/datamesh/node/api"
	"github.com/datamesh/datamesh/node/metrics"
)

// newMetrics builds the node's metrics, in a registry of its own, when its
// HTTP port is on; otherwise nothing could serve them, and the API and the
// log get no observer, which costs them nothing. The collector reads
// the log, the projections, the mesh and the server at scrape time.
func (n *Node) newMetrics() {
	if n.cfg.HTTP == "" {
		return
	}
	n.metrics = metrics.New(metrics.Sources{Log: n.events, Projections: n.projections, Mesh: n.mesh,
		Server: n.srv.NATS()}, n.log)
	n.syncMetrics.Store(n.metrics)
}

// apiObserver is what the API tells of appends and queries; nil without
// metrics (a nil *metrics.Metrics in the interface would not be nil).
func (n *Node) apiObserver() api.Observer {
	if n.metrics == nil {
		return nil
	}
	return n.metrics
}

// metricsHandler serves /metrics.
func (n *Node) metricsHandler() http.Handler {
	if n.metrics == nil {
		return nil
	}
	return n.metrics.Handler()
}
