package node

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/tidwall/gjson"
)

// incoming is one event as a client sent it, in binary or structured mode,
// before the node fills defaults.
type incoming struct {
	Type       string
	ID         string // client-given ce-id; "" lets the node make one (no dedup)
	Source     string
	Time       string
	DataSchema string
	Extensions map[string]string // other ce-* attributes, kept verbatim
	Data       []byte
}

// validToken reports whether s is one NATS subject token usable as an
// aggregate, id or event type.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// checkBasics enforces the rules that do not need a contract.
func (ev *incoming) checkBasics(maxBytes int) *Error {
	if ev.Type == "" {
		return errBadRequest("the event type (ce-type) is required")
	}
	if !validToken(ev.Type) {
		return errBadRequest("event type %q must be one NATS token: no '.', '*', '>' or whitespace", ev.Type)
	}
	if len(ev.Data) > maxBytes {
		return errTooLarge("event data is %d bytes; the limit is %d", len(ev.Data), maxBytes)
	}
	if len(ev.Data) == 0 {
		return errBadRequest("event data is empty; it must be JSON (send {} for an event without data)")
	}
	if !json.Valid(ev.Data) {
		return errBadRequest("event data is not valid JSON")
	}
	if ev.Time != "" {
		if _, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil {
			return errBadRequest("ce-time %q is not an RFC 3339 timestamp", ev.Time)
		}
	}
	if strings.ContainsAny(ev.ID, "\r\n") || len(ev.ID) > 256 {
		return errBadRequest("ce-id must be at most 256 characters on one line")
	}
	return nil
}

// message turns a checked event into the JetStream message stored in the log.
// The stored headers are the CloudEvents binary-mode attributes with every
// default filled, so the log alone describes each event.
func (ev *incoming) message(cfg Config, aggregate, id, dataSchema string) *nats.Msg {
	m := nats.NewMsg(cfg.SubjectPrefix + "." + aggregate + "." + id + "." + ev.Type)
	for k, v := range ev.Extensions {
		m.Header.Set("ce-"+k, v)
	}
	ceID := ev.ID
	if ceID == "" {
		ceID = nuid.Next()
	} else {
		m.Header.Set(nats.MsgIdHdr, ev.ID)
	}
	src := ev.Source
	if src == "" {
		src = "urn:datamesh:" + cfg.Name
	}
	t := ev.Time
	if t == "" {
		t = time.Now().UTC().Format(time.RFC3339Nano)
	}
	if ev.DataSchema != "" {
		dataSchema = ev.DataSchema
	}
	m.Header.Set(HeaderSpecVersion, SpecVersion)
	m.Header.Set(HeaderType, ev.Type)
	m.Header.Set(HeaderID, ceID)
	m.Header.Set(HeaderSource, src)
	m.Header.Set(HeaderTime, t)
	if dataSchema != "" {
		m.Header.Set(HeaderDataSchema, dataSchema)
	}
	m.Header.Set(HeaderContentType, "application/json")
	m.Data = ev.Data
	return m
}

// headerValue reads a header case-insensitively: NATS headers are
// case-sensitive, but HTTP habits make clients send Ce-Type or CE-TYPE.
func headerValue(h nats.Header, key string) string {
	if v := h.Get(key); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// fromHeaders reads a binary-mode event: attributes in ce-* headers, data in the body.
func fromHeaders(h nats.Header, body []byte) (*incoming, *Error) {
	if v := headerValue(h, HeaderSpecVersion); v != "" && v != SpecVersion {
		return nil, errBadRequest("ce-specversion %q is not supported; use %s", v, SpecVersion)
	}
	if ct := headerValue(h, HeaderContentType); ct != "" && !isJSONContentType(ct) {
		return nil, errBadRequest("content-type %q is not JSON", ct)
	}
	ev := &incoming{
		Type:       headerValue(h, HeaderType),
		ID:         headerValue(h, HeaderID),
		Source:     headerValue(h, HeaderSource),
		Time:       headerValue(h, HeaderTime),
		DataSchema: headerValue(h, HeaderDataSchema),
		Data:       body,
	}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "ce-") || len(vs) == 0 {
			continue
		}
		name := lk[3:]
		switch name {
		case "specversion", "type", "id", "source", "time", "dataschema", "datacontenttype":
			continue
		}
		if ev.Extensions == nil {
			ev.Extensions = map[string]string{}
		}
		ev.Extensions[name] = vs[0]
	}
	return ev, nil
}

func isJSONContentType(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	return ct == "application/json" || strings.HasSuffix(ct, "+json")
}

// fromStructured reads one structured-mode CloudEvent of a batch. raw is
// valid JSON (the whole batch was checked); gjson reads it without decoding
// it into maps first.
func fromStructured(raw gjson.Result) (*incoming, *Error) {
	if !raw.IsObject() {
		return nil, errBadRequest("not a JSON object")
	}
	ev := &incoming{}
	var e *Error
	raw.ForEach(func(key, v gjson.Result) bool {
		k := key.Str
		if k == "data" {
			ev.Data = []byte(v.Raw)
			return true
		}
		if k == "data_base64" {
			e = errBadRequest("data_base64 is not supported; data must be JSON")
			return false
		}
		if v.Type != gjson.String {
			e = errBadRequest("attribute %q must be a string", k)
			return false
		}
		s := v.Str
		switch k {
		case "specversion":
			if s != SpecVersion {
				e = errBadRequest("specversion %q is not supported; use %s", s, SpecVersion)
			}
		case "type":
			ev.Type = s
		case "id":
			ev.ID = s
		case "source":
			ev.Source = s
		case "time":
			ev.Time = s
		case "dataschema":
			ev.DataSchema = s
		case "datacontenttype":
			if !isJSONContentType(s) {
				e = errBadRequest("datacontenttype %q is not JSON", s)
			}
		case "aggregate", "aggregateid", "seq", "subject":
			// Set by the node from the request subject and the log.
		default:
			if ev.Extensions == nil {
				ev.Extensions = map[string]string{}
			}
			ev.Extensions[k] = s
		}
		return e == nil
	})
	if e != nil {
		return nil, e
	}
	return ev, nil
}

// eventFromMsg turns a stored message back into a structured CloudEvent.
func eventFromMsg(prefix, subject string, seq uint64, h nats.Header, data []byte) Event {
	ev := Event{
		SpecVersion:     h.Get(HeaderSpecVersion),
		Type:            h.Get(HeaderType),
		ID:              h.Get(HeaderID),
		Source:          h.Get(HeaderSource),
		Time:            h.Get(HeaderTime),
		DataContentType: h.Get(HeaderContentType),
		DataSchema:      h.Get(HeaderDataSchema),
		Seq:             seq,
		Data:            json.RawMessage(data),
	}
	// <prefix>.<aggregate>.<id>.<type>
	if parts := strings.Split(strings.TrimPrefix(subject, prefix+"."), "."); len(parts) == 3 {
		ev.Aggregate, ev.AggregateID = parts[0], parts[1]
		if ev.Type == "" {
			ev.Type = parts[2]
		}
	}
	if node := h.Get(HeaderOriginNode); node != "" && h.Get(HeaderLink) != "" {
		seq, _ := strconv.ParseUint(h.Get(HeaderOriginSeq), 10, 64)
		ev.Origin = &Origin{Node: node, Seq: seq, ID: h.Get(HeaderOriginID), Link: h.Get(HeaderLink), Path: h.Get(HeaderMeshPath)}
	}
	if node := h.Get(HeaderOriginNode); node != "" && h.Get(HeaderLink) != "" {
		seq, _ := strconv.ParseUint(h.Get(HeaderOriginSeq), 10, 64)
		ev.Origin = &Origin{Node: node, Seq: seq, ID: h.Get(HeaderOriginID), Link: h.Get(HeaderLink), Path: h.Get(HeaderMeshPath)}
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
