// Package client is a thin Go client for a DataMesh node's NATS API. It adds
// nothing to the protocol: every call is one NATS request that any client
// could make by hand (see docs/protocol.md). The CLI and the tests use it.
package client
