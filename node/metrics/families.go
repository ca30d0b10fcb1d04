package metrics

import "github.com/prometheus/client_golang/prometheus"

// family is one metric: its name, type, labels and meaning. Every metric
// the package exports is one of the families below.
type family struct {
	name   string
	typ    string // counter, gauge or histogram
	labels []string
	help   string
}

const (
	counter   = "counter"
	gauge     = "gauge"
	histogram = "histogram"
)

func (f *family) desc() *prometheus.Desc {
	return prometheus.NewDesc(f.name, f.help, f.labels, nil)
}

// Appends: instruments, updated by the API and the log's group commit.
var (
	famAppendRequests = &family{"datamesh_append_requests_total", counter, []string{"outcome"},
		"Append requests answered (a batch is one request), by outcome: stored, deduplicated (every ce-id stored before) or the error code of the reply."}
	famEventsAppended = &family{"datamesh_events_appended_total", counter, nil,
		"Events stored by appends; a batch counts its events."}
	famAppendDuration = &family{"datamesh_append_duration_seconds", histogram, nil,
		"Time from an append request's arrival to its reply, whatever the outcome."}
	famGroupCommit = &family{"datamesh_group_commit_batch_size", histogram, nil,
		"Writes to the log (single appends, batches, link imports) made durable by one fsync (fsync mode only; 1 is a write synced alone)."}
	famFsyncDuration = &family{"datamesh_log_fsync_duration_seconds", histogram, nil,
		"Time of one group-commit fsync of the log's files (fsync mode only)."}
)

// Queries: instruments, updated by the API.
var (
	famQueryRequests = &family{"datamesh_query_requests_total", counter, []string{"projection", "outcome"},
		"Queries answered, by projection (\"\" if the request named none that exists) and outcome: ok or the error code of the reply."}
	famQueryDuration = &family{"datamesh_query_duration_seconds", histogram, []string{"projection", "outcome"},
		"Time from a query's arrival to its reply, including a wait for min_seq."}
	famQueryWaits = &family{"datamesh_query_min_seq_waits_total", counter, []string{"projection", "outcome"},
		"Queries that had to wait for the projection to reach their min_seq; outcome not_up_to_date: it did not in time."}
)

// The log: read from the stream's info at scrape time.
var (
	famLogMessages = &family{"datamesh_log_messages", gauge, nil, "Events in the log's stream."}
	famLogBytes    = &family{"datamesh_log_bytes", gauge, nil, "Size of the log's stream."}
	famLogFirstSeq = &family{"datamesh_log_first_seq", gauge, nil, "Seq of the log's first event."}
	famLogLastSeq  = &family{"datamesh_log_last_seq", gauge, nil, "Seq of the log's last event (its head)."}
)

// Projections: one series per projection version, at scrape time.
var (
	projectionLabels  = []string{"projection", "version"}
	famProjActive     = &family{"datamesh_projection_active", gauge, projectionLabels, "1 for the version that answers queries without a version, else 0."}
	famProjState      = &family{"datamesh_projection_state", gauge, []string{"projection", "version", "state"}, "1 for the version's state (building, live, failed, retrying, stopped), 0 for the others."}
	famProjApplied    = &family{"datamesh_projection_applied_seq", gauge, projectionLabels, "Seq, in the log, of the last event the version applied; it grows with every event applied."}
	famProjLagEvents  = &family{"datamesh_projection_lag_events", gauge, projectionLabels, "Events of the version's source not applied yet, as of its last batch."}
	famProjLagSeconds = &family{"datamesh_projection_lag_seconds", gauge, projectionLabels, "Age of the oldest event not applied yet; 0 when caught up."}
	famProjProgress   = &family{"datamesh_projection_progress_ratio", gauge, projectionLabels, "Rebuild progress: the events of its source applied / its source's events in the log, 0..1; 1 once live."}
	famProjDocuments  = &family{"datamesh_projection_documents", gauge, projectionLabels, "Documents in the version's store."}
	famProjFileBytes  = &family{"datamesh_projection_file_bytes", gauge, projectionLabels, "Size of the version's store file."}
	famProjDead       = &family{"datamesh_projection_dead_letters", gauge, projectionLabels, "Events the version could not apply and set aside (on_error: dead_letter)."}
)

// Links and exports: one series per link, and per export and peer.
var (
	linkLabels         = []string{"link", "peer"}
	famLinkConnected   = &family{"datamesh_link_connected", gauge, linkLabels, "1 while the link is connected to its peer's export."}
	famLinkState       = &family{"datamesh_link_state", gauge, []string{"link", "peer", "state"}, "1 for the link's state (connecting, importing, failed), 0 for the others."}
	famLinkOriginSeq   = &family{"datamesh_link_origin_seq", gauge, linkLabels, "The peer's seq of the last event imported (or skipped)."}
	famLinkLagEvents   = &family{"datamesh_link_lag_events", gauge, linkLabels, "Events exported by the peer and not imported yet."}
	famLinkLagSeconds  = &family{"datamesh_link_lag_seconds", gauge, linkLabels, "Age of the oldest exported event not imported yet."}
	famLinkImported    = &family{"datamesh_link_events_imported_total", counter, linkLabels, "Events the link imported since the node started."}
	famLinkFiltered    = &family{"datamesh_link_events_filtered_total", counter, linkLabels, "Events the link's filter skipped since the node started."}
	famLinkDead        = &family{"datamesh_link_dead_letters", gauge, linkLabels, "Events the link could not import and set aside (dead letters not replayed yet)."}
	exportLabels       = []string{"export", "peer"}
	famExportSeq       = &family{"datamesh_export_exported_seq", gauge, exportLabels, "Seq (in this node's log) of the last event exported to the peer."}
	famExportConnected = &family{"datamesh_export_connected", gauge, exportLabels, "1 while the export to the peer runs (its stream is in place)."}
)

// The embedded nats-server: read from Varz, in process, at scrape time.
var (
	famConnections   = &family{"datamesh_server_connections", gauge, nil, "Client connections to the embedded server, the node's own included."}
	famSlowConsumers = &family{"datamesh_server_slow_consumers_total", counter, nil, "Clients the embedded server cut off as slow consumers."}
	famLeafnodes     = &family{"datamesh_server_leafnodes", gauge, nil, "Leafnode connections: peers linked to this node and this node's links to peers."}
	famJSMemory      = &family{"datamesh_jetstream_memory_bytes", gauge, nil, "Memory used by JetStream's memory-backed streams."}
	famJSStorage     = &family{"datamesh_jetstream_storage_bytes", gauge, nil, "Disk used by JetStream's streams: the log, the registry, exports."}
	famJSMemoryMax   = &family{"datamesh_jetstream_memory_limit_bytes", gauge, nil, "JetStream's memory limit."}
	famJSStorageMax  = &family{"datamesh_jetstream_storage_limit_bytes", gauge, nil, "JetStream's storage limit: at it, appends are refused."}
)

// families lists every metric, in the order of docs/metrics.md.
var families = []*family{
	famAppendRequests, famEventsAppended, famAppendDuration, famGroupCommit, famFsyncDuration,
	famLogMessages, famLogBytes, famLogFirstSeq, famLogLastSeq,
	famProjActive, famProjState, famProjApplied, famProjLagEvents, famProjLagSeconds,
	famProjProgress, famProjDocuments, famProjFileBytes, famProjDead,
	famLinkConnected, famLinkState, famLinkOriginSeq, famLinkLagEvents, famLinkLagSeconds,
	famLinkImported, famLinkFiltered, famLinkDead, famExportSeq, famExportConnected,
	famQueryRequests, famQueryDuration, famQueryWaits,
	famConnections, famSlowConsumers, famLeafnodes, famJSMemory, famJSStorage, famJSMemoryMax, famJSStorageMax,
}
