package node

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/api"
	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/embed"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/projection"
)

// This file translates the node's configuration into each part's.

// maxPayloadFloor is nats-server's default max_payload.
const maxPayloadFloor = 1024 * 1024

// maxPayload leaves room in one message for a whole event plus its
// attributes, and for read replies that carry several events.
func (c Config) maxPayload() int32 {
	return int32(max(maxPayloadFloor, 4*c.MaxEventBytes))
}

func (c Config) serverConfig() embed.Config {
	level, _ := parseLevel(c.LogLevel)
	kv := func(bucket string) string { return "$KV." + bucket + ".>" }
	var peers []embed.Peer
	for _, name := range sortedPeers(c) {
		peers = append(peers, embed.Peer{Name: name, Secret: c.Peers[name].Secret, Nkey: c.Peers[name].Nkey})
	}
	return embed.Config{
		Name: c.Name, DataDir: c.DataDir, Listen: c.Listen, LeafListen: c.LeafListen,
		Peers: peers, MaxPayload: c.maxPayload(), LogLevel: level,
		Protected: []string{c.SubjectPrefix + ".>", protocol.SubjectChanges + ".>",
			kv(registry.Bucket), kv(registry.LinksBucket),
			protocol.SubjectRejected + ".>"},
		ProtectedStreams: []string{c.StreamName, "KV_" + registry.Bucket, "KV_" + registry.LinksBucket,
			protocol.RejectedStream},
		Served: []string{protocol.SubjectAppend + ".>", protocol.SubjectAppendOn + ".>", protocol.SubjectRead + ".>", protocol.SubjectQuery + ".>",
			protocol.SubjectAdmin + ".>", protocol.SubjectDiscovery},
		ExportSubjects: meshlink.ExportSubjectPrefix + ".>",
		Services:       c.Services,
		API: embed.APISubjects{Append: protocol.SubjectAppend, AppendOn: protocol.SubjectAppendOn, Read: protocol.SubjectRead, Query: protocol.SubjectQuery,
			Changes: protocol.SubjectChanges, Admin: protocol.SubjectAdmin, Discovery: protocol.SubjectDiscovery,
			Rejected: protocol.SubjectRejected, Stream: c.StreamName, EventPrefix: c.SubjectPrefix},
		TLS: c.TLS, LeafTLS: c.LeafTLS,
		ServerName: c.serverName(), Cluster: c.clusterConfig(),
		SyncAlways: c.clustered() && c.Durability == DurabilityFsync,
	}
}

// ownsFsync reports whether the node fsyncs its streams' files itself: a
// one-replica log in fsync mode. In a cluster JetStream's quorum
// acknowledges a write, and with fsync each server fsyncs it
// (sync_always).
func (c Config) ownsFsync() bool { return !c.clustered() && c.Durability == DurabilityFsync }

func (c Config) backupConfig() backup.Config {
	// Links' checkpoints first, then the registry: see backup.Runner.
	return backup.Config{Node: c.Name, Version: protocol.Version, Log: c.StreamName,
		Buckets: []string{"KV_" + registry.LinksBucket, "KV_" + registry.Bucket}, Peers: sortedPeers(c)}
}

// streamDir maps a stream of the node's account to its directory. JetStream
// runs without sync_always: the node fsyncs a new stream's metadata in both
// modes, and in fsync mode every write (docs/performance.md, "Group
// commit").
// In a cluster it is "": the files are JetStream's, on every server.
func (n *Node) streamDir(stream string) string {
	if n.cfg.clustered() {
		return ""
	}
	return n.srv.StreamDir(embed.NodeAccount, stream)
}

func (n *Node) logConfig() eventlog.Config {
	c := n.cfg
	cfg := eventlog.Config{
		Node: c.Name, Stream: c.StreamName, SubjectPrefix: c.SubjectPrefix, MaxEventBytes: c.MaxEventBytes,
		DedupWindow: time.Duration(c.DedupWindow), RequireContracts: c.RequireContracts, MaxBytes: c.MaxLogBytes,
		// A read's JSON reply must stay under max_payload (the last event
		// may overshoot the bound by its own size).
		ReadMaxBytes: int(c.maxPayload())/2 - c.MaxEventBytes,
		Dir:          n.streamDir(c.StreamName), Fsync: c.ownsFsync(), Replicas: c.replicas(),
	}
	if cfg.Fsync {
		cfg.OnSync = func(writes int, took time.Duration) {
			if m := n.syncMetrics.Load(); m != nil {
				m.CommitGroup(writes, took)
			}
		}
	}
	return cfg
}

func (n *Node) projectionConfig() projection.ManagerConfig {
	return projection.ManagerConfig{
		DataDir: n.cfg.DataDir, Stream: n.cfg.StreamName, SubjectPrefix: n.cfg.SubjectPrefix,
		ChangesPrefix: protocol.SubjectChanges,
		// One connection per worker: a rebuild's stream of messages must
		// not queue up in front of the API's requests and replies.
		Connect: func() (*nats.Conn, error) { return n.srv.Connect(nats.Name("datamesh-projection")) },
		Head:    n.events.Head,
		Store:   n.registry,
		Natives: n.natives,
		Follow:  n.cfg.clustered(),
	}
}

func (n *Node) meshConfig() meshlink.Config {
	cfg := meshlink.Config{Node: n.cfg.Name, Peers: sortedPeers(n.cfg), MaxEventBytes: n.cfg.MaxEventBytes,
		Transforms: n.transforms, Fsync: n.cfg.ownsFsync(), Replicas: n.cfg.replicas(), Clustered: n.cfg.clustered(),
		Server: n.cfg.serverName()}
	if !n.cfg.clustered() {
		cfg.ExportDir = func(peer, stream string) string { return n.srv.StreamDir(embed.ExportAccount(peer), stream) }
	}
	return cfg
}

// meshLog is the log as the mesh sees it. Its refusals read as the API's
// error replies do ("schema_violation: data does not satisfy ..."): they
// end up in dead letters and in a link's status, which users read beside
// the API's errors (and read so before the split).
type meshLog struct{ *eventlog.Log }

func (l meshLog) Prepare(aggregate, id string, d *eventlog.Draft) (*nats.Msg, error) {
	m, err := l.Log.Prepare(aggregate, id, d)
	if err != nil {
		return nil, api.WireError(err)
	}
	return m, nil
}
