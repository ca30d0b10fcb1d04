package meshlink

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/schemas"
)

// The mesh reaches the node only through the interfaces below; the node
// implements them.

// Log is the node's event log as the mesh uses it.
type Log interface {
	// Prepare checks an event against the node's rules and contracts and
	// returns the message to store (errors are eventlog's typed errors).
	Prepare(aggregate, id string, d *eventlog.Draft) (*nats.Msg, error)
	// AppendOnce appends m unless the log holds its ce-id already (replay).
	AppendOnce(ctx context.Context, m *nats.Msg) error
	// Head is the log's last seq.
	Head(ctx context.Context) (uint64, error)
	// Sync returns once every write to the log acknowledged before the
	// call is durable (at once in os mode): imports publish on their own
	// connection and call it before they move their checkpoint.
	Sync(ctx context.Context) error
	// Prefix is the log's subject prefix ("evt").
	Prefix() string
	// Stream is the log's stream ("EVENTS").
	Stream() string
}

// Dialer opens in-process connections to the node's server.
type Dialer interface {
	// Connect signs in with the node's own rights (its log and registry).
	Connect(opts ...nats.Option) (*nats.Conn, error)
	// ConnectExport signs in to the account that holds the export streams
	// granted to peer, which peer's leafnode joins.
	ConnectExport(peer string, opts ...nats.Option) (*nats.Conn, error)
	// ConnectPeer signs in to the account where links to peer read its
	// exports, across this node's leafnode to peer (JetStream domain = peer).
	ConnectPeer(peer string, opts ...nats.Option) (*nats.Conn, error)
}

// Leafnodes changes and reports the node's leafnode connections.
type Leafnodes interface {
	// SetRemotes makes the server solicit one leafnode per peer at its URL
	// (peer → URL), signed in with the shared secret, bound to the peer's
	// account. It reloads the server; the mesh serializes calls and skips
	// calls that change nothing.
	SetRemotes(remotes map[string]string) error
	// ExportConnected reports whether a peer's leafnode is in its export account.
	ExportConnected(peer string) bool
	// PeerConnected reports whether this node's leafnode to peer is up.
	PeerConnected(peer string) bool
}

// Store keeps the mesh's resources and state. The node's registry
// implements it; its KV keys and JSON are the node's (export.<name>,
// link.<name> in datamesh_registry; checkpoint.<link>,
// deadletter.<link>.<exportSeq> in datamesh_links).
type Store interface {
	Exports(ctx context.Context) ([]*Export, error)
	PutExport(ctx context.Context, e *Export) error
	DeleteExport(ctx context.Context, name string) error
	Links(ctx context.Context) ([]*Link, error)
	PutLink(ctx context.Context, l *Link) error
	DeleteLink(ctx context.Context, name string) error
	// Checkpoint returns the link's checkpoint; the zero value if none is stored.
	Checkpoint(ctx context.Context, link string) (Checkpoint, error)
	PutCheckpoint(ctx context.Context, link string, cp Checkpoint) error
	// CreateDeadLetter stores dl unless one is stored at its link and
	// export seq (created false).
	CreateDeadLetter(ctx context.Context, dl DeadLetter) (created bool, err error)
	// DeadLetter reads one; found false if none.
	DeadLetter(ctx context.Context, link string, exportSeq uint64) (dl DeadLetter, found bool, err error)
	PutDeadLetter(ctx context.Context, dl DeadLetter) error
	DeleteDeadLetter(ctx context.Context, link string, exportSeq uint64) error
	// DeadLetterSeqs lists the export seqs of a link's dead letters, unsorted.
	DeadLetterSeqs(ctx context.Context, link string) ([]uint64, error)
}

// Contracts lists the node's event types for the catalog its peers see.
type Contracts interface {
	EventTypes() []schemas.CatalogEntry
}

// Deps are the parts of the node the mesh uses.
type Deps struct {
	Log       Log
	Dialer    Dialer
	Leafnodes Leafnodes
	Store     Store
	Contracts Contracts
}

var (
	_ Log         = (*eventlog.Log)(nil)
	_ Transformer = TransformFunc(nil)
)
