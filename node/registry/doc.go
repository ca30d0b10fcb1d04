// Package registry is where a node keeps its resources and the state of its
// mesh links: two JetStream KV buckets, and every key scheme written to them
// in one place (keys.go), so the data on disk reads the same whoever writes
// it. It also holds the compiled contracts in memory and decides which
// version of a contract applies.
//
// It implements the stores that the domain packages declare
// (projection.SpecStore, meshlink.Store, eventlog.Contracts); it does not run
// projections or links, and it knows nothing of the API.
package registry
