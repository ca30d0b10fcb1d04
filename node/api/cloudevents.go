package api

import (
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/tidwall/gjson"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
)

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

func badRequest(format string, args ...any) *protocol.Error {
	return protocol.NewError(protocol.CodeBadRequest, format, args...)
}

// fromHeaders reads a binary-mode event: attributes in ce-* headers, data in the body.
func fromHeaders(h nats.Header, body []byte) (*eventlog.Draft, *protocol.Error) {
	if v := headerValue(h, protocol.HeaderSpecVersion); v != "" && v != protocol.SpecVersion {
		return nil, badRequest("ce-specversion %q is not supported; use %s", v, protocol.SpecVersion)
	}
	if ct := headerValue(h, protocol.HeaderContentType); ct != "" && !isJSONContentType(ct) {
		return nil, badRequest("content-type %q is not JSON", ct)
	}
	d := &eventlog.Draft{
		Type:       headerValue(h, protocol.HeaderType),
		ID:         headerValue(h, protocol.HeaderID),
		Source:     headerValue(h, protocol.HeaderSource),
		Time:       headerValue(h, protocol.HeaderTime),
		DataSchema: headerValue(h, protocol.HeaderDataSchema),
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
		if d.Extensions == nil {
			d.Extensions = map[string]string{}
		}
		d.Extensions[name] = vs[0]
	}
	return d, nil
}

func isJSONContentType(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	return ct == "application/json" || strings.HasSuffix(ct, "+json")
}

// fromStructured reads one structured-mode CloudEvent of a batch. raw is
// valid JSON (the whole batch was checked); gjson reads it without decoding
// it into maps first.
func fromStructured(raw gjson.Result) (*eventlog.Draft, *protocol.Error) {
	if !raw.IsObject() {
		return nil, badRequest("not a JSON object")
	}
	d := &eventlog.Draft{}
	var e *protocol.Error
	raw.ForEach(func(key, v gjson.Result) bool {
		e = structuredAttribute(d, key.Str, v)
		return e == nil
	})
	if e != nil {
		return nil, e
	}
	return d, nil
}

// structuredAttribute sets attribute k of a structured event on d.
func structuredAttribute(d *eventlog.Draft, k string, v gjson.Result) *protocol.Error {
	if k == "data" {
		d.Data = []byte(v.Raw)
		return nil
	}
	if k == "data_base64" {
		return badRequest("data_base64 is not supported; data must be JSON")
	}
	if v.Type != gjson.String {
		return badRequest("attribute %q must be a string", k)
	}
	s := v.Str
	switch k {
	case "specversion":
		if s != protocol.SpecVersion {
			return badRequest("specversion %q is not supported; use %s", s, protocol.SpecVersion)
		}
	case "type":
		d.Type = s
	case "id":
		d.ID = s
	case "source":
		d.Source = s
	case "time":
		d.Time = s
	case "dataschema":
		d.DataSchema = s
	case "datacontenttype":
		if !isJSONContentType(s) {
			return badRequest("datacontenttype %q is not JSON", s)
		}
	case "aggregate", "aggregateid", "seq", "subject":
		// Set by the node from the request subject and the log.
	default:
		if d.Extensions == nil {
			d.Extensions = map[string]string{}
		}
		d.Extensions[k] = s
	}
	return nil
}
