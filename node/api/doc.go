// Package api serves a node's API: the NATS micro service "datamesh" whose
// endpoints (see package protocol for the subjects and bodies) append to
// and read the log, query projections, and administer resources,
// projection versions and the mesh. One file per endpoint group.
//
// It is the only place where a domain error becomes a wire error code
// (errors.go): the domain packages return typed errors and know nothing of
// codes or statuses. It holds no state of its own beyond the requests under
// way.
package api
