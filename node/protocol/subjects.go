package protocol

import "github.com/datamesh/datamesh/node/eventlog"

// Version is the DataMesh version reported by discovery and the micro service.
const Version = "0.1.0"

// Subjects of the node's API, a NATS micro service named ServiceName.
const (
	ServiceName      = "datamesh"
	SubjectAppend    = "dm.append" // dm.append.<aggregate>.<id>
	SubjectRead      = "dm.read"   // dm.read.<aggregate>[.<id>]
	SubjectApply     = "dm.admin.apply"
	SubjectDiscovery = "dm.discovery"

	SubjectQuery       = "dm.query"   // dm.query.<projection>[.v<version>]
	SubjectChanges     = "dm.changes" // dm.changes.<projection>.<key>
	SubjectProjections = "dm.admin.projections"
	SubjectRetry       = "dm.admin.projection.retry"
	SubjectPromote     = "dm.admin.projection.promote"
	SubjectRollback    = "dm.admin.projection.rollback"
	SubjectRetire      = "dm.admin.projection.retire"

	SubjectMesh      = "dm.admin.mesh"       // links' and exports' status
	SubjectLinkRetry = "dm.admin.link.retry" // {"name": ...}: restart a failed link
	// SubjectDeadLetters lists a link's dead letters: {"name": ...}.
	SubjectDeadLetters = "dm.admin.link.deadletters"
	// SubjectReplay replays a link's dead letters: {"name": ..., "export_seqs": [...]}.
	SubjectReplay = "dm.admin.link.replay"
	// SubjectDelete deletes an export or a link: {"kind": ..., "name": ...}.
	SubjectDelete = "dm.admin.delete"
	// SubjectReload re-reads the node's config and applies its services,
	// peers and certificates (what SIGHUP does).
	SubjectReload = "dm.admin.reload"
	// SubjectServer is where one server of a cluster answers for itself:
	// dm.admin.server.<server>.projections (its projection versions).
	SubjectServer = "dm.admin.server"
	// SubjectRunner is where, on a cluster, the server that runs the
	// links and exports answers for them: dm.admin.runner.<endpoint>
	// (mesh, link-retry, replay). The other servers forward there.
	SubjectRunner = "dm.admin.runner"
	// SubjectAppendOn is, on a cluster, an append handled by the server
	// named: dm.append-on.<server>.<aggregate>.<id>, answered as
	// dm.append.<aggregate>.<id> is (docs/cluster.md).
	SubjectAppendOn = "dm.append-on"
	// SubjectAdmin covers every admin subject.
	SubjectAdmin = "dm.admin"
)

// Headers of the append protocol: CloudEvents' NATS binding (binary mode)
// plus ours. The ce-* headers are stored with each event as they are.
const (
	HeaderSpecVersion     = eventlog.HeaderSpecVersion
	HeaderType            = eventlog.HeaderType
	HeaderID              = eventlog.HeaderID
	HeaderSource          = eventlog.HeaderSource
	HeaderTime            = eventlog.HeaderTime
	HeaderDataSchema      = eventlog.HeaderDataSchema
	HeaderContentType     = eventlog.HeaderContentType
	HeaderExpectedVersion = "Dm-Expected-Version"
	HeaderForce           = "Dm-Force"

	// ContentTypeBatch marks an atomic batch of structured CloudEvents.
	ContentTypeBatch = "application/cloudevents-batch+json"
	// SpecVersion is the CloudEvents version the node speaks.
	SpecVersion = eventlog.SpecVersion
)

// Headers an imported event carries in the recipient's log, and an exported
// event in an export stream.
const (
	HeaderOriginNode = eventlog.HeaderOriginNode
	HeaderOriginSeq  = eventlog.HeaderOriginSeq
	HeaderOriginID   = eventlog.HeaderOriginID
	HeaderLink       = eventlog.HeaderLink
	HeaderLinkSeq    = eventlog.HeaderLinkSeq
	HeaderMeshPath   = eventlog.HeaderMeshPath
)
