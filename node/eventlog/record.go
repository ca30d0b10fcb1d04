package eventlog

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/datamesh/datamesh/schemas"
)

// Headers of a stored event: CloudEvents' NATS binding (binary mode), every
// attribute filled, so the log alone describes each event.
const (
	HeaderSpecVersion = "ce-specversion"
	HeaderType        = "ce-type"
	HeaderID          = "ce-id"
	HeaderSource      = "ce-source"
	HeaderTime        = "ce-time"
	HeaderDataSchema  = "ce-dataschema"
	HeaderContentType = "content-type"

	// SpecVersion is the CloudEvents version the log stores.
	SpecVersion = "1.0"
)

// Headers an imported event carries in the recipient's log, and an exported
// event in an export stream (see package meshlink).
const (
	HeaderOriginNode = "Dm-Origin-Node" // the node the event was exported from
	HeaderOriginSeq  = "Dm-Origin-Seq"  // its seq in that node's log
	HeaderOriginID   = "Dm-Origin-Id"   // its ce-id there
	HeaderLink       = "Dm-Link"        // the link that imported it
	HeaderLinkSeq    = "Dm-Link-Seq"    // its seq in the export stream
	// HeaderMeshPath lists the nodes an event went through, comma separated.
	// A node never exports an event whose path holds its own name.
	HeaderMeshPath = "Dm-Mesh-Path"
)

// Draft is one event as a client (or a link) gives it, before the log fills
// its defaults.
type Draft struct {
	Type       string
	ID         string // client-given ce-id; "" lets the log make one (no dedup)
	Source     string
	Time       string
	DataSchema string
	Extensions map[string]string // other ce-* attributes, kept verbatim
	Data       []byte
}

// check enforces the rules that do not need a contract.
func (d *Draft) check(maxBytes int) error {
	if d.Type == "" {
		return invalid("the event type (ce-type) is required")
	}
	if !schemas.ValidToken(d.Type) {
		return invalid("event type %q must be one NATS token: no '.', '*', '>' or whitespace", d.Type)
	}
	if len(d.Data) > maxBytes {
		return tooLarge("event data is %d bytes; the limit is %d", len(d.Data), maxBytes)
	}
	if len(d.Data) == 0 {
		return invalid("event data is empty; it must be JSON (send {} for an event without data)")
	}
	if !json.Valid(d.Data) {
		return invalid("event data is not valid JSON")
	}
	if d.Time != "" {
		if _, err := time.Parse(time.RFC3339Nano, d.Time); err != nil {
			return invalid("ce-time %q is not an RFC 3339 timestamp", d.Time)
		}
	}
	if strings.ContainsAny(d.ID, "\r\n") || len(d.ID) > 256 {
		return invalid("ce-id must be at most 256 characters on one line")
	}
	return nil
}

// message turns a checked draft into the message stored in the log.
func (d *Draft) message(prefix, node, aggregate, id, dataSchema string) *nats.Msg {
	m := nats.NewMsg(Subject(prefix, aggregate, id, d.Type))
	for k, v := range d.Extensions {
		m.Header.Set("ce-"+k, v)
	}
	ceID := d.ID
	if ceID == "" {
		ceID = nuid.Next()
	} else {
		m.Header.Set(nats.MsgIdHdr, d.ID)
	}
	src := d.Source
	if src == "" {
		src = "urn:datamesh:" + node
	}
	t := d.Time
	if t == "" {
		t = time.Now().UTC().Format(time.RFC3339Nano)
	}
	if d.DataSchema != "" {
		dataSchema = d.DataSchema
	}
	m.Header.Set(HeaderSpecVersion, SpecVersion)
	m.Header.Set(HeaderType, d.Type)
	m.Header.Set(HeaderID, ceID)
	m.Header.Set(HeaderSource, src)
	m.Header.Set(HeaderTime, t)
	if dataSchema != "" {
		m.Header.Set(HeaderDataSchema, dataSchema)
	}
	m.Header.Set(HeaderContentType, "application/json")
	m.Data = d.Data
	return m
}

// Record is a stored event as read back from the log.
type Record struct {
	Seq       uint64
	Subject   string
	Aggregate string // "" if the subject is not <prefix>.<aggregate>.<id>.<type>
	ID        string
	Type      string // from the subject
	Header    nats.Header
	Data      []byte
}

// EventID is the record's ce-id.
func (r *Record) EventID() string { return r.Header.Get(HeaderID) }

// NewRecord reads a message of the log's stream (prefix: the log's subject
// prefix), as a consumer or a direct get delivers it.
func NewRecord(prefix, subject string, seq uint64, h nats.Header, data []byte) Record {
	r := Record{Seq: seq, Subject: subject, Header: h, Data: data}
	r.Aggregate, r.ID, r.Type, _ = ParseSubject(prefix, subject)
	return r
}
