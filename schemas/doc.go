// Package schemas knows event contracts: the EventType resource that gives
// the JSON Schema (2020-12) one event type's data must satisfy, validation of
// event data against it, and the backward-compatibility check between two
// versions of a contract.
//
// It is not where contracts are stored or enforced on the wire: the node
// keeps them in its registry and calls Validate on every append.
package schemas
