// Package backup takes consistent backups of a running node and restores
// them into a new data directory.
//
// A backup is a tar archive (format.go): a manifest naming the node, its
// accounts and its streams, then each stream's JetStream snapshot as
// JetStream's snapshot API streams it ($JS.API.STREAM.SNAPSHOT), then the
// SHA-256 of every part. The streams are the link checkpoints and dead
// letters (KV_datamesh_links), the registry (KV_datamesh_registry), the
// export streams of every peer's export account, and the event log, taken
// in that order (see Runner for why). Projections are not in it: they are
// derived from the log, and a restored node rebuilds them.
//
// Runner is the node's part that takes backups: the API streams what it
// writes to a client (node/api/backup.go, docs/backup.md). Restore reads a
// backup and recreates the streams through JetStream's restore API
// ($JS.API.STREAM.RESTORE) in a server started only for that, with no port
// open.
//
// Runner.BeginRestore restores a backup into the running node instead: a
// new, empty cluster, which is how a standalone node moves into one
// (online.go says why that is safe while the node runs; the API receives
// the file, node/api/restore.go). Send is the client side.
//
// It knows JetStream's snapshot protocol and the archive; it does not know
// the API's subjects or wire codes: its errors are kinds (ErrBusy,
// ErrInvalid, ...) that node/api maps.
package backup
