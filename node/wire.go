package node

import (
	"encoding/json"
	"strconv"
)

// Subjects of the node's API, a NATS micro service named "datamesh".
const (
	ServiceName      = "datamesh"
	SubjectAppend    = "dm.append" // dm.append.<aggregate>.<id>
	SubjectRead      = "dm.read"   // dm.read.<aggregate>[.<id>]
	SubjectApply     = "dm.admin.apply"
	SubjectDiscovery = "dm.discovery"
	SubjectMesh      = "dm.admin.mesh"       // links' and exports' status
	SubjectLinkRetry = "dm.admin.link.retry" // {"name": ...}: restart a failed link
	// SubjectDeadLetters lists a link's dead letters: {"name": ...}.
	SubjectDeadLetters = "dm.admin.link.deadletters"
	// SubjectReplay replays a link's dead letters: {"name": ..., "export_seqs": [...]}.
	SubjectReplay = "dm.admin.link.replay"
	// SubjectDelete deletes an export or a link: {"kind": ..., "name": ...}.
	SubjectDelete = "dm.admin.delete"
)

// Headers of the append protocol: CloudEvents' NATS binding (binary mode) plus ours.
const (
	HeaderSpecVersion     = "ce-specversion"
	HeaderType            = "ce-type"
	HeaderID              = "ce-id"
	HeaderSource          = "ce-source"
	HeaderTime            = "ce-time"
	HeaderDataSchema      = "ce-dataschema"
	HeaderContentType     = "content-type"
	HeaderExpectedVersion = "Dm-Expected-Version"
	HeaderForce           = "Dm-Force"

	// ContentTypeBatch marks an atomic batch of structured CloudEvents.
	ContentTypeBatch = "application/cloudevents-batch+json"
	// SpecVersion is the CloudEvents version the node speaks.
	SpecVersion = "1.0"
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

// Event is a stored event in CloudEvents' structured JSON form, with the
// extension attributes aggregate, aggregateid and seq.
type Event struct {
	SpecVersion     string            `json:"specversion"`
	Type            string            `json:"type"`
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Time            string            `json:"time,omitempty"`
	DataContentType string            `json:"datacontenttype,omitempty"`
	DataSchema      string            `json:"dataschema,omitempty"`
	Aggregate       string            `json:"aggregate"`
	AggregateID     string            `json:"aggregateid"`
	Seq             uint64            `json:"seq"`
	Extensions      map[string]string `json:"-"`
	// Origin is set on events imported by a mesh link.
	Origin *Origin         `json:"origin,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Origin says where an imported event comes from.
type Origin struct {
	Node string `json:"node"`           // the owner's node name
	Seq  uint64 `json:"seq"`            // the event's seq in the owner's log
	ID   string `json:"id,omitempty"`   // its ce-id there
	Link string `json:"link,omitempty"` // the link that imported it
	// Path lists the nodes the event went through, comma separated.
	Path string `json:"path,omitempty"`
}

// ApplyResult reports what apply did with one resource.
type ApplyResult struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Aggregate string `json:"aggregate,omitempty"`
	Version   int    `json:"version"`
	// Status is created, unchanged or forced.
	Status string `json:"status"`
}

// ApplyReply answers dm.admin.apply.
type ApplyReply struct {
	Results []ApplyResult `json:"results"`
}

// eventFields has Event's attributes without its methods, so that the JSON
// methods below can reuse the struct tags.
type eventFields Event

// MarshalJSON writes extension attributes at the top level, as CloudEvents'
// structured mode requires.
func (e Event) MarshalJSON() ([]byte, error) {
	f := eventFields(e)
	f.Extensions = nil
	b, err := json.Marshal(f)
	if err != nil || len(e.Extensions) == 0 {
		return b, err
	}
	m := make(map[string]json.RawMessage, len(e.Extensions)+12)
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range e.Extensions {
		if _, ok := m[k]; !ok {
			m[k], _ = json.Marshal(v)
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON collects unknown string attributes into Extensions.
func (e *Event) UnmarshalJSON(b []byte) error {
	var f eventFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, v := range m {
		switch k {
		case "specversion", "type", "id", "source", "time", "datacontenttype", "dataschema",
			"aggregate", "aggregateid", "seq", "data", "extensions":
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			if f.Extensions == nil {
				f.Extensions = map[string]string{}
			}
			f.Extensions[k] = s
		}
	}
	*e = Event(f)
	return nil
}
