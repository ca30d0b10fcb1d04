// Package schemas knows event contracts: the EventType resource that gives
// the JSON Schema (draft 2020-12 unless the schema says otherwise) that the
// data of one event type of one aggregate must satisfy.
//
// It decodes and checks contracts (DecodeContract, Contract.Validate),
// compiles them into Validators that list every violation of an event's
// data, and tells whether a new version of a contract is backward compatible
// with the previous one (CheckCompatible). A contract's schema is
// self-contained: "$ref" may point inside it, never to a file or a URL.
//
// It is not where contracts are stored, versioned or enforced on the wire,
// and it knows nothing of NATS: the node keeps contracts in its registry,
// decides which version applies and calls Validate on every append.
package schemas
