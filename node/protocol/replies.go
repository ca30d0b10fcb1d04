package protocol

import (
	"strconv"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/projection"
)

// AppendReply answers a single-event append.
type AppendReply struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// MarshalJSON encodes r as encoding/json would, without reflection: it is on
// every append's path.
func (r AppendReply) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 40)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"duplicate":`...)
	b = strconv.AppendBool(b, r.Duplicate)
	return append(b, '}'), nil
}

// BatchReply answers an atomic batch append.
type BatchReply struct {
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Count     int    `json:"count"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// ReadRequest is the optional body of a read.
type ReadRequest struct {
	FromSeq uint64 `json:"from_seq,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// ReadReply holds events in log order. NextSeq, when not zero, is the
// from_seq that continues the read: the reply was cut by limit or size.
type ReadReply struct {
	Events  []Event `json:"events"`
	NextSeq uint64  `json:"next_seq,omitempty"`
}

// ApplyResult reports what apply did with one resource.
type ApplyResult struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Aggregate string `json:"aggregate,omitempty"`
	Version   int    `json:"version"`
	// Status is created, unchanged, updated, replaced or forced.
	Status string `json:"status"`
}

// ApplyReply answers dm.admin.apply.
type ApplyReply struct {
	Results []ApplyResult `json:"results"`
}

// ProjectionsReply answers dm.admin.projections.
type ProjectionsReply struct {
	Projections []projection.Status `json:"projections"`
	// Server is the server that answered; Servers, on a cluster, every
	// server of the node: each answers for its own projections on
	// SubjectServer.<server>.projections.
	Server  string   `json:"server,omitempty"`
	Servers []string `json:"servers,omitempty"`
}

// VersionRequest names a projection version: the body of promote, rollback
// (version unused), retire and retry.
type VersionRequest struct {
	Name    string `json:"name"`
	Version int    `json:"version,omitempty"`
}

// AliasReply says which version of a projection is active after a promote
// or a rollback, and which one was before.
type AliasReply struct {
	Name     string `json:"name"`
	Active   int    `json:"active"`
	Previous int    `json:"previous"`
}

// RetireReply confirms a retired version.
type RetireReply struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Retired bool   `json:"retired"`
}

// Mesh replies are the mesh runtime's own types.
type (
	// MeshStatus answers dm.admin.mesh.
	MeshStatus = meshlink.Status
	// LinkStatus is one link in dm.admin.mesh.
	LinkStatus = meshlink.LinkStatus
	// ExportStatus is one export to one peer in dm.admin.mesh.
	ExportStatus = meshlink.ExportStatus
	// DeadLetter is an imported event a transform or a contract refused.
	DeadLetter = meshlink.DeadLetter
	// ReplayReply answers dm.admin.link.replay.
	ReplayReply = meshlink.ReplayResult
	// PeerCatalog is what one peer shows this node.
	PeerCatalog = meshlink.PeerCatalog
	// ExportCatalog is one export as its peers see it.
	ExportCatalog = meshlink.ExportCatalog
)

// Link states, as LinkStatus.State reports them.
const (
	LinkConnecting = meshlink.LinkConnecting
	LinkImporting  = meshlink.LinkImporting
	LinkFailed     = meshlink.LinkFailed
)

// DeleteRequest is the body of dm.admin.delete.
type DeleteRequest struct {
	Kind string `json:"kind"` // Export or Link
	Name string `json:"name"`
}

// DeleteReply answers dm.admin.delete.
type DeleteReply struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status string `json:"status"` // deleted
}

// DeadLettersRequest is the body of dm.admin.link.deadletters.
type DeadLettersRequest struct {
	Name string `json:"name"`
	// After skips the dead letters up to this export seq (paging).
	After uint64 `json:"after,omitempty"`
	// Limit is how many to return: default 100, at most 1000.
	Limit int `json:"limit,omitempty"`
}

// DeadLettersReply answers dm.admin.link.deadletters.
type DeadLettersReply struct {
	Name        string       `json:"name"`
	DeadLetters []DeadLetter `json:"dead_letters"`
	// Next, when not 0, is the after that continues the list.
	Next uint64 `json:"next,omitempty"`
}

// ReplayRequest is the body of dm.admin.link.replay.
type ReplayRequest struct {
	Name string `json:"name"`
	// ExportSeqs picks dead letters by export seq; none: all of them.
	ExportSeqs []uint64 `json:"export_seqs,omitempty"`
}
