// Package metrics is a node's Prometheus metrics, served at /metrics on its
// HTTP port. It holds one private registry per node (two nodes in one
// process never share one) with two kinds of figures:
//
//   - instruments the hot paths update as they work: appends and queries
//     (Metrics implements api.Observer) and group-commit writes
//     (Metrics.CommitGroup, set as eventlog.Config.OnSync);
//   - a collector that reads the parts' own status when Prometheus
//     scrapes: the log's stream, each projection version, each link and
//     export, and the embedded nats-server (Varz, in process).
//
// Every metric is declared once, in families.go; docs/metrics.md lists
// them and a test keeps the two in step.
//
// It is not where figures are computed: the parts keep their own status
// (lag, progress, dead letters) and this package only exposes it. The parts
// do not import it: the API and the log see an interface and a
// callback, so they stay free of Prometheus.
package metrics
