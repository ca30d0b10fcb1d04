// Package projection folds the event log into read models: each projection
// version has a Worker that reads the stream from its checkpoint, folds
// every event of its source into a document (expressions compiled from a
// Spec, or a Folder written in Go) and commits documents, indexes, history
// and checkpoint together in its own BuntDB file (Store), so a crash at any
// point replays into the same state. Workers answer queries (get, list,
// count, history, waiting for a min_seq) and report their Status. The
// Manager runs one worker per version, holds the active alias of each
// projection, and promotes, rolls back, retires and applies versions.
//
// It is not the API: it knows nothing of request subjects, wire replies or
// error codes. Its errors wrap kinds (ErrNotFound, ErrConflict, ErrNotReady,
// ErrInvalid, ErrUnavailable, ErrNotUpToDate) that the API maps to codes. It
// does not store its definitions either: the node's registry does, behind
// the SpecStore interface declared here. The expression language lives in
// the sub-package expression, shared with mesh links.
package projection
