// Package node assembles a DataMesh node: it reads the configuration
// (DefaultConfig, LoadConfigFile, Validate), builds the parts in order and
// closes them in reverse (see Node.started for the order and why), and
// offers the Go API of programs that embed a node (Connect, Apply,
// RegisterProjection, RegisterTransformer, Use).
//
// It holds no behaviour of its own. Each part is a room of its own:
//   - node/embed: the embedded nats-server: options, accounts, permissions, reload;
//   - node/eventlog: the event log and group commit;
//   - node/registry: the KV buckets and every key scheme;
//   - node/resource: applying resources, all or none;
//   - node/api: the micro service "datamesh", where domain errors become wire codes;
//   - node/protocol: the wire protocol (subjects, headers, bodies, error codes);
//   - node/client: a thin Go client of that protocol;
//   - projection: read models, their workers and versions;
//   - meshlink: exports, links, checkpoints, dead letters and replay.
package node
