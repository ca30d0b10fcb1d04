// Package node runs a DataMesh node: the embedded nats-server with
// JetStream that is a service's NATS server and durable event log, the
// registry of resources (event contracts) kept in a JetStream KV bucket, and
// the node's API, a NATS micro service on dm.append, dm.read, dm.admin.apply
// and dm.discovery.
//
// It owns the process-level concerns: configuration, start-up and shutdown,
// permissions of service connections, wire formats and error codes. It is not
// where contracts are checked (package schemas) or where read models fold
// events (package projection).
package node
