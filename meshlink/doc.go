// Package meshlink will link DataMesh nodes over NATS leafnodes: exports on
// the owning node, links with per-link transformers on the recipient. Not
// built yet: see the mesh links issue.
package meshlink
