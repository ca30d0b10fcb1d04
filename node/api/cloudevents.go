package api

import (
	"encoding/base64"
	"encoding/json"
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

// isStructured reports whether an append is one structured-mode CloudEvent:
// content-type application/cloudevents+json, or no content type, no
// binary-mode attribute headers and a JSON object body with specversion
// (what the CloudEvents SDKs' NATS senders publish).
func isStructured(h nats.Header, body []byte) bool {
	ct := headerValue(h, protocol.HeaderContentType)
	if ct != "" {
		return strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), protocol.ContentTypeStructured)
	}
	if headerValue(h, protocol.HeaderType) != "" || headerValue(h, protocol.HeaderSpecVersion) != "" {
		return false
	}
	body = []byte(strings.TrimLeft(string(body), " \t\r\n"))
	return len(body) > 0 && body[0] == '{' && gjson.GetBytes(body, "specversion").Exists()
}

// fromStructuredBody reads a structured-mode event: the whole event as the
// JSON object body, specversion required.
func fromStructuredBody(agg, id string, body []byte) (*eventlog.Draft, *protocol.Error) {
	// json.Valid first: it refuses nesting gjson would recurse into.
	if !json.Valid(body) {
		return nil, badRequest("a structured CloudEvent (%s) must be a JSON object", protocol.ContentTypeStructured)
	}
	raw := gjson.ParseBytes(body)
	if !raw.IsObject() {
		return nil, badRequest("a structured CloudEvent (%s) must be a JSON object", protocol.ContentTypeStructured)
	}
	if !raw.Get("specversion").Exists() {
		return nil, badRequest("a structured CloudEvent needs \"specversion\": %q", protocol.SpecVersion)
	}
	return fromStructured(raw, agg, id)
}

// fromStructured reads one structured-mode CloudEvent for aggregate agg, id
// id. raw is valid JSON (the whole body was checked); gjson reads it
// without decoding it into maps first.
func fromStructured(raw gjson.Result, agg, id string) (*eventlog.Draft, *protocol.Error) {
	if !raw.IsObject() {
		return nil, badRequest("not a JSON object")
	}
	d := &eventlog.Draft{}
	var e *protocol.Error
	seen := map[string]bool{}
	raw.ForEach(func(key, v gjson.Result) bool {
		if seen[key.Str] {
			e = badRequest("attribute %q appears twice", key.Str)
			return false
		}
		seen[key.Str] = true
		e = structuredAttribute(d, key.Str, v)
		if e == nil {
			e = checkTarget(key.Str, v, agg, id)
		}
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
		b, err := base64.StdEncoding.DecodeString(v.Str)
		if v.Type != gjson.String || err != nil || !json.Valid(b) {
			return badRequest("data_base64 must be base64 of JSON data; the node stores JSON only")
		}
		d.Data = b
		return nil
	}
	if !attributeName(k) {
		return badRequest("attribute name %q: CloudEvents attribute names are lower-case letters and digits", k)
	}
	if v.Type == gjson.Number || v.Type == gjson.True || v.Type == gjson.False {
		if extension(k) {
			setExtension(d, k, v.Raw) // an integer or boolean extension
			return nil
		}
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
		if strings.ContainsAny(s, "\r\n") {
			return badRequest("attribute %q must be on one line (it is stored as a ce- header)", k)
		}
		setExtension(d, k, s)
	}
	return nil
}

// attributeName reports whether k is a valid CloudEvents attribute name:
// lower-case ASCII letters and digits (CloudEvents 1.0, "Attribute
// Naming Convention"), as binary mode's ce- headers are read.
func attributeName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// extension reports whether k names an extension attribute, not one of
// CloudEvents' own or one the node sets.
func extension(k string) bool {
	switch k {
	case "specversion", "type", "id", "source", "time", "dataschema", "datacontenttype",
		"aggregate", "aggregateid", "seq", "subject":
		return false
	}
	return true
}

func setExtension(d *eventlog.Draft, k, v string) {
	if d.Extensions == nil {
		d.Extensions = map[string]string{}
	}
	d.Extensions[k] = v
}

// checkTarget refuses the aggregate and aggregateid attributes (the
// extensions a read returns) when they name another aggregate than the
// append's subject.
func checkTarget(k string, v gjson.Result, agg, id string) *protocol.Error {
	switch {
	case k == "aggregate" && v.Str != agg:
		return badRequest("attribute aggregate %q disagrees with the subject's aggregate %q", v.Str, agg)
	case k == "aggregateid" && v.Str != id:
		return badRequest("attribute aggregateid %q disagrees with the subject's id %q", v.Str, id)
	}
	return nil
}
