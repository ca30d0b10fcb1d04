// Package monitor serves a node's HTTP port: nats-server's monitoring pages
// (/varz, /jsz, /connz, /leafz, …, read in process), /healthz (the process
// is up), /readyz (the node serves: its API is up, every active projection
// version is live, every link is connected) and /metrics (Prometheus).
//
// It owns the listener; nats-server's own HTTP server is not started. It
// does not compute figures: readiness and metrics come from the parts
// through the functions it is given.
package monitor
