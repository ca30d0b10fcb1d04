package protocol

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/datamesh/datamesh/node/eventlog"
)

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

// EventFromRecord is a stored event in CloudEvents' structured form, as
// dm.read answers it and datamesh tail prints it.
func EventFromRecord(r eventlog.Record) Event {
	h := r.Header
	ev := Event{
		SpecVersion:     h.Get(HeaderSpecVersion),
		Type:            h.Get(HeaderType),
		ID:              h.Get(HeaderID),
		Source:          h.Get(HeaderSource),
		Time:            h.Get(HeaderTime),
		DataContentType: h.Get(HeaderContentType),
		DataSchema:      h.Get(HeaderDataSchema),
		Aggregate:       r.Aggregate,
		AggregateID:     r.ID,
		Seq:             r.Seq,
		Data:            r.Data,
	}
	if ev.Type == "" {
		ev.Type = r.Type
	}
	if node := h.Get(HeaderOriginNode); node != "" && h.Get(HeaderLink) != "" {
		seq, _ := strconv.ParseUint(h.Get(HeaderOriginSeq), 10, 64)
		ev.Origin = &Origin{Node: node, Seq: seq, ID: h.Get(HeaderOriginID),
			Link: h.Get(HeaderLink), Path: h.Get(HeaderMeshPath)}
	}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "ce-") || len(vs) == 0 {
			continue
		}
		switch name := lk[3:]; name {
		case "specversion", "type", "id", "source", "time", "dataschema":
		default:
			if ev.Extensions == nil {
				ev.Extensions = map[string]string{}
			}
			ev.Extensions[name] = vs[0]
		}
	}
	return ev
}
