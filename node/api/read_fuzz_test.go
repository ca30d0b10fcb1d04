package api

import (
	"testing"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/schemas"
)

// FuzzDecodeRead reads fuzzed read subjects and bodies: a refusal is a
// bad_request with a message; an accepted read names a valid aggregate
// (and id, if any) and a limit within the bounds.
func FuzzDecodeRead(f *testing.F) {
	f.Add("dm.read.order.o-1", []byte(``))
	f.Add("dm.read.order", []byte(`{"from_seq":5,"limit":10}`))
	f.Add("dm.read.order.o-1.x", []byte(`{"limit":-1}`))
	f.Add("dm.read.order", []byte(`{"from":1}`))
	f.Add("dm.read", []byte(`from 1`))
	f.Add("dm.read.order.o-1", []byte(`{"limit":100000,"from_seq":-2}`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		agg, id, rr, e := decodeRead(subject, body)
		if e != nil {
			if e.Code != protocol.CodeBadRequest || e.Message == "" {
				t.Fatalf("refused with %+v", e)
			}
			return
		}
		if !schemas.ValidToken(agg) || (id != "" && !schemas.ValidToken(id)) {
			t.Fatalf("%q read as aggregate %q id %q", subject, agg, id)
		}
		if rr.Limit < 1 || rr.Limit > eventlog.MaxReadLimit {
			t.Fatalf("%s read with limit %d", body, rr.Limit)
		}
	})
}
