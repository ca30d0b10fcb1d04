// Package eventlog is the node's append-only event log: one JetStream stream
// whose subjects are <prefix>.<aggregate>.<id>.<type>, and every mechanic of
// it in one place: the subject format and its parser, the headers a stored
// event carries, checking an event before it is stored, single, pipelined and
// atomic-batch publishes (one staging helper), group commit, direct gets (one
// helper), reading pages and finding a stored ce-id.
//
// It is not the API: it knows nothing of request subjects, wire replies or
// error codes. Its errors are typed (see errors.go); the API turns them into
// codes. It does not know contracts either: it asks the Contracts it is given.
package eventlog
