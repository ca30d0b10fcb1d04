// Package meshlink defines how DataMesh nodes share events: the Export
// resource (on the owner: which events leave, to which peers, with which
// fields removed) and the Link resource (on the recipient: which peer and
// export to import, and how each event is transformed into the recipient's
// model). The node runs them over NATS leafnodes; see docs/mesh.md.
package meshlink
