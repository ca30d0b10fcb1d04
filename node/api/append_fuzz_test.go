package api

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/tidwall/gjson"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
)

// exampleContracts checks data against deploy/examples/orders/contracts.yaml.
type exampleContracts map[string]*schemas.Validator

func (c exampleContracts) Check(aggregate, typ string, data []byte) (string, bool, error) {
	v, ok := c[aggregate+"."+typ]
	if !ok {
		return "", false, nil
	}
	return v.Contract().SchemaURI(), true, v.Check(data)
}

// fuzzLog is a log (never started: Prepare needs no stream) with the
// example contracts and a small event limit.
func fuzzLog(f *testing.F) *eventlog.Log {
	b, err := os.ReadFile("../../deploy/examples/orders/contracts.yaml")
	if err != nil {
		f.Fatal(err)
	}
	cs := exampleContracts{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		c, err := schemas.DecodeContract([]byte(doc))
		if err != nil {
			f.Fatal(err)
		}
		if cs[c.Key()], err = schemas.Compile(c); err != nil {
			f.Fatal(err)
		}
	}
	return eventlog.New(eventlog.Config{Node: "fuzz", Stream: "EVENTS", SubjectPrefix: "evt", MaxEventBytes: 1024},
		nil, cs, hclog.NewNullLogger())
}

// appendCodes are the codes an append may be refused with before the log.
var appendCodes = map[string]bool{protocol.CodeBadRequest: true, protocol.CodeTooLarge: true,
	protocol.CodeSchemaViolation: true, protocol.CodeNoContract: true}

func checkRefusal(t *testing.T, e *protocol.Error) {
	t.Helper()
	if !appendCodes[e.Code] || e.Status == 0 || e.Message == "" {
		t.Fatalf("refused with %+v, want a typed refusal", e)
	}
	if e.Code == protocol.CodeSchemaViolation && len(e.Violations) == 0 {
		t.Fatalf("schema_violation without violations: %+v", e)
	}
}

// FuzzAppendBinary turns fuzzed binary-mode headers and bodies into
// drafts and stored messages, as handleAppend does: a refusal is a typed
// wire error; an accepted event reads back with the attributes it was
// given.
func FuzzAppendBinary(f *testing.F) {
	log := fuzzLog(f)
	f.Add("OrderPlaced", "ord-1", "", "", "traceparent", "00-1", "", "0", []byte(`{"customer":"c-1","total":30}`))
	f.Add("OrderPlaced", "", "urn:x", "2026-11-23T10:00:00.5Z", "", "", "application/json", "", []byte(`{"customer":"c-1"}`))
	f.Add("ItemAdded", "i\r\n", "", "yesterday", "x", "y", "text/plain", "-1", []byte(`{"sku":"s","price":-1}`))
	f.Add("Order.Placed", "", "", "", "", "", "application/cloudevents+json", " 7 ", []byte(`not json`))
	f.Add("", "", "", "", "", "", "", "", []byte(nil))
	f.Add("Any", strings.Repeat("x", 300), "", "", "type", "Other", "", "", bytes.Repeat([]byte("1"), 2000))
	f.Fuzz(func(t *testing.T, typ, id, source, tm, ext, extVal, ct, expected string, body []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{protocol.HeaderType: typ, protocol.HeaderID: id, protocol.HeaderSource: source,
			protocol.HeaderTime: tm, "ce-" + ext: extVal, protocol.HeaderContentType: ct, protocol.HeaderExpectedVersion: expected} {
			if v != "" {
				h.Set(k, v)
			}
		}
		if _, e := parseExpectedVersion(h); e != nil {
			checkRefusal(t, e)
			return
		}
		d, e := fromHeaders(h, body)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		m, err := log.Prepare("order", "o-1", d)
		if err != nil {
			checkRefusal(t, WireError(err))
			return
		}
		checkStored(t, m, d, body)
	})
}

// checkStored reads m back as a read would and compares it with d.
func checkStored(t *testing.T, m *nats.Msg, d *eventlog.Draft, body []byte) {
	t.Helper()
	ev := protocol.EventFromRecord(eventlog.NewRecord("evt", m.Subject, 1, m.Header, m.Data))
	if ev.Type != d.Type || ev.Aggregate != "order" || ev.AggregateID != "o-1" || !bytes.Equal(ev.Data, body) ||
		(d.ID != "" && ev.ID != d.ID) || ev.ID == "" || (d.Source != "" && ev.Source != d.Source) ||
		(d.Time != "" && ev.Time != d.Time) || ev.SpecVersion != protocol.SpecVersion {
		t.Fatalf("draft %+v read back as %+v", d, ev)
	}
	for k, v := range d.Extensions {
		if ev.Extensions[k] != v {
			t.Fatalf("extension %q=%q read back as %q", k, v, ev.Extensions[k])
		}
	}
}

// FuzzAppendBatch prepares fuzzed batch bodies: a refusal is a typed wire
// error naming the event (if one caused it); an accepted batch holds one
// message per event, each with its data.
func FuzzAppendBatch(f *testing.F) {
	a := &API{cfg: Config{MaxBatch: 3}, deps: Deps{Log: fuzzLog(f)}}
	f.Add([]byte(`[{"type":"ItemAdded","id":"i-1","data":{"sku":"s-1","price":10}},{"type":"ItemAdded","id":"i-2","data":{"sku":"s-2","price":5}}]`))
	f.Add([]byte(`[{"type":"ItemAdded","id":"i-1","data":{"sku":"s-1","price":10}},{"type":"ItemAdded","id":"i-1","data":{"sku":"s-1","price":10}}]`))
	f.Add([]byte(`[{"type":"ItemAdded","data":{"sku":"s-1","price":"x"}}]`))
	f.Add([]byte(`[{"specversion":"1.0","type":"X","data_base64":"AA=="},1,[]]`))
	f.Add([]byte(`[{"type":"X","time":"now","data":{}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[{},{},{},{}]`))
	f.Add([]byte(`[{"type":"X","traceparent":"00","aggregate":"other","data":{"a":[1,2]}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, e := a.prepareBatch("order", "o-1", body)
		if e != nil {
			checkRefusal(t, e)
			if e.Index != nil && (*e.Index < 0 || *e.Index >= len(gjson.ParseBytes(body).Array())) {
				t.Fatalf("index %d outside the batch", *e.Index)
			}
			return
		}
		events := gjson.ParseBytes(body).Array()
		if len(msgs) != len(events) || len(msgs) == 0 {
			t.Fatalf("%d messages for %d events", len(msgs), len(events))
		}
		for i, m := range msgs {
			// A repeated attribute counts once, the last, as in encoding/json.
			var typ, data string
			events[i].ForEach(func(k, v gjson.Result) bool {
				switch k.Str {
				case "type":
					typ = v.Str
				case "data":
					data = v.Raw
				}
				return true
			})
			if m.Header.Get(protocol.HeaderType) != typ || data != string(m.Data) {
				t.Fatalf("event %d: stored %q %q, sent %q %q", i, m.Header.Get(protocol.HeaderType), m.Data, typ, data)
			}
		}
	})
}

// FuzzDecodeQuery decodes fuzzed query subjects and bodies: a refusal is
// a bad_request; the fast path for simple gets reads exactly what the
// strict decoder reads.
func FuzzDecodeQuery(f *testing.F) {
	for _, b := range []string{`{"get":"o-1"}`, `{"get":"o-1","min_seq":4,"timeout_ms":200}`, `{"get":"o-1","at_seq":3,"version":2}`,
		`{"list":{"index":"by_status","eq":"placed","limit":2,"after":"x"}}`, `{"count":{"index":"by_total","gte":20}}`,
		`{"get":"o-1","min_seq":1099511627776,"timeout_ms":200}`, `{"get":"\u00e9\n","min_seq":-1}`, `{"get":1}`,
		`{"get":"a","get":"b"}`, `{"history":"o-1","extra":1}`, `[]`, ``} {
		f.Add("dm.query.orders", []byte(b))
		f.Add("dm.query.orders.v2", []byte(b))
	}
	f.Add("dm.query.orders.x.y", []byte(`{"get":"o-1"}`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		_, q, e := decodeQuery(subject, body)
		if e != nil {
			if e.Code != protocol.CodeBadRequest || e.Message == "" {
				t.Fatalf("refused with %+v", e)
			}
			return
		}
		simple, ok := decodeSimpleQuery(body)
		if !ok {
			return
		}
		var strict projection.Query
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&strict); err != nil {
			t.Fatalf("fast path read %s as %+v; the strict decoder refuses it: %v", body, simple, err)
		}
		if !reflect.DeepEqual(simple, strict) {
			t.Fatalf("fast path read %s as %+v, strict as %+v", body, simple, strict)
		}
		_ = q
	})
}
