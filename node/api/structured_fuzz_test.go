package api

import (
	"testing"

	"github.com/tidwall/gjson"
)

// FuzzAppendStructured turns fuzzed structured-mode bodies (what the
// CloudEvents SDKs' NATS senders publish) into drafts and stored messages:
// a refusal is a typed wire error; an accepted event reads back with its
// type, id and data as the body gave them.
func FuzzAppendStructured(f *testing.F) {
	log := fuzzLog(f)
	f.Add([]byte(`{"specversion":"1.0","type":"OrderPlaced","id":"e-1","source":"urn:x","data":{"customer":"c-1","total":30}}`))
	f.Add([]byte(`{"specversion":"1.0","type":"OrderPlaced","datacontenttype":"application/json","data_base64":"eyJjdXN0b21lciI6ImMifQ=="}`))
	f.Add([]byte(`{"specversion":"0.3","type":"OrderPlaced","data":{}}`))
	f.Add([]byte(`{"specversion":"1.0","type":"OrderPlaced","aggregate":"other","data":{}}`))
	f.Add([]byte(`{"specversion":"1.0","type":"OrderPlaced","aggregateid":"o-2","traceparent":"00-1","n":3,"b":true,"data":{}}`))
	f.Add([]byte(`{"specversion":"1.0","type":"OrderPlaced","data_base64":"AA=="}`))
	f.Add([]byte(`{"specversion":"1.0"}`))
	f.Add([]byte(`[{"specversion":"1.0"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, e := fromStructuredBody("order", "o-1", body)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		m, err := log.Prepare("order", "o-1", d)
		if err != nil {
			checkRefusal(t, WireError(err))
			return
		}
		raw := gjson.ParseBytes(body)
		if raw.Get("type").String() != d.Type || (raw.Get("id").Exists() && raw.Get("id").String() != d.ID) {
			t.Fatalf("body %s gave draft %+v", body, d)
		}
		checkStored(t, m, d, d.Data)
	})
}
