// Package meshlink is how DataMesh nodes share events, from the resources
// to the runtime.
//
// The resources: an Export (on the owner: which events leave, to which
// peers, with which data fields removed, see Redact) and a Link (on the
// recipient: which peer and export to import, and how each event becomes
// one of the recipient's own, by a transform of expressions or a
// Transformer written in Go).
//
// The runtime, Mesh: per export and peer, a worker that copies the selected
// events, redacted, from the log into the export stream the peer reads;
// per link, a worker that reads a peer's export stream over a leafnode,
// transforms each event and appends it to the log as atomic batches,
// effectively once (checkpoints, and a recovery scan of the log); dead
// letters and their replay; the catalog each peer is shown; status.
// docs/mesh.md describes what the runtime guarantees and how.
//
// It is not the node. It reaches the node only through the small
// interfaces in deps.go (the log, in-process connections, leafnodes, a
// store for resources, checkpoints and dead letters, the contracts), which
// the node implements; it does not know the server's options or accounts,
// the API's subjects or its wire codes. Its errors are typed (errors.go);
// the API turns them into codes.
package meshlink
