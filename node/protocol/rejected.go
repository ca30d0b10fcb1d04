package protocol

import (
	"encoding/json"
	"time"
)

// The rejected record: events published to dm.append without a reply
// subject that the node refused. Nobody waits for their answer, so the node
// keeps them, with their error, in a bounded stream of their own and
// announces each on SubjectRejected.<aggregate>.
const (
	// SubjectRejected is where each refused published event is announced,
	// and what the rejected stream holds: dm.rejected.<aggregate>
	// (dm.rejected._ when the subject named no valid aggregate).
	SubjectRejected = "dm.rejected"
	// RejectedStream is the stream of the rejected record.
	RejectedStream = "REJECTED"
	// RejectedNoAggregate is the aggregate token of a refused event whose
	// subject named no valid aggregate.
	RejectedNoAggregate = "_"

	// SubjectRejectedList lists the rejected record: RejectedListRequest.
	SubjectRejectedList = "dm.admin.rejected.list"
	// SubjectRejectedReplay appends rejected events again: RejectedReplayRequest.
	SubjectRejectedReplay = "dm.admin.rejected.replay"
	// SubjectRejectedStatus counts the rejected record: RejectedStatus.
	SubjectRejectedStatus = "dm.admin.rejected.status"

	// ContentTypeStructured marks one structured-mode CloudEvent (the whole
	// event as a JSON object in the body).
	ContentTypeStructured = "application/cloudevents+json"
)

// RejectedEvent is one refused published event as the rejected record holds it.
type RejectedEvent struct {
	// Seq is its place in the rejected stream (not in the log).
	Seq uint64 `json:"seq"`
	// Subject is the dm.append subject it was published to.
	Subject     string `json:"subject"`
	Aggregate   string `json:"aggregate"`
	AggregateID string `json:"aggregateid,omitempty"`
	Type        string `json:"type,omitempty"`
	// ID is its ce-id: the one it was published with, or the one the node
	// gave it when it had none. A replay stores it once under this id.
	ID    string    `json:"id,omitempty"`
	Error *Error    `json:"error"`
	At    time.Time `json:"at"`
	// Headers are the headers it was published with.
	Headers map[string]string `json:"headers,omitempty"`
	// Data is the body it was published with, when that is JSON;
	// DataBase64 otherwise.
	Data       json.RawMessage `json:"data,omitempty"`
	DataBase64 []byte          `json:"data_base64,omitempty"`
	// Truncated: the body was too large to keep beside the error; such an
	// event cannot be replayed.
	Truncated bool `json:"truncated,omitempty"`
}

// RejectedListRequest is the body of dm.admin.rejected.list.
type RejectedListRequest struct {
	Aggregate string `json:"aggregate,omitempty"` // "" every aggregate
	After     uint64 `json:"after,omitempty"`     // rejected seq to list after
	Limit     int    `json:"limit,omitempty"`     // 1..1000, default 100
}

// RejectedListReply answers dm.admin.rejected.list; Next, when not 0, is
// the After that continues the list.
type RejectedListReply struct {
	Rejected []RejectedEvent `json:"rejected"`
	Next     uint64          `json:"next,omitempty"`
}

// RejectedReplayRequest is the body of dm.admin.rejected.replay: the
// rejected seqs to append again (none: all, of Aggregate if given).
type RejectedReplayRequest struct {
	Seqs      []uint64 `json:"seqs,omitempty"`
	Aggregate string   `json:"aggregate,omitempty"`
}

// RejectedReplayReply answers dm.admin.rejected.replay.
type RejectedReplayReply struct {
	// Replayed are stored now (or were found stored under their ce-id)
	// and removed from the record.
	Replayed []uint64 `json:"replayed"`
	// Failed are refused again (with the new error, without their data);
	// they stay in the record.
	Failed []RejectedEvent `json:"failed"`
	// More says that rejected events are left beyond this call's limit.
	More bool `json:"more,omitempty"`
}

// RejectedStatus answers dm.admin.rejected.status.
type RejectedStatus struct {
	Stream   string `json:"stream"`
	Count    uint64 `json:"count"` // refused published events held
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// MaxAgeSeconds and MaxBytes bound the record; the oldest go first.
	MaxAgeSeconds float64 `json:"max_age_seconds"`
	MaxBytes      int64   `json:"max_bytes"`
	// LostSinceStart counts refused events since the node started that
	// could not be written to the record (they are in the node's log).
	LostSinceStart uint64 `json:"lost_since_start,omitempty"`
}
