package meshlink_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/meshlink"
)

// meshDocs are the documents of the mesh examples of the given kind.
func meshDocs(f *testing.F, kind string) []string {
	f.Helper()
	var docs []string
	for _, file := range []string{"orders", "billing", "shipping"} {
		b, err := os.ReadFile("../deploy/examples/mesh/" + file + "-resources.yaml")
		if err != nil {
			f.Fatal(err)
		}
		for _, d := range strings.Split(string(b), "\n---\n") {
			if strings.Contains(d, "kind: "+kind) {
				docs = append(docs, d)
			}
		}
	}
	return docs
}

// FuzzDecodeExport: an export that decodes re-encodes to one that decodes
// equal; one that does not decode says why.
func FuzzDecodeExport(f *testing.F) {
	for _, d := range meshDocs(f, meshlink.KindExport) {
		f.Add(d)
	}
	f.Add("kind: Export\nname: x\nto: [b]\naggregates: [order]\nredact: [customer.email, a.b.c]\n")
	f.Add("kind: Export\nname: x\nto: []\naggregates: ['a.b']\n")
	f.Fuzz(func(t *testing.T, doc string) {
		x, err := meshlink.DecodeExport([]byte(doc))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		j, _ := json.Marshal(x)
		again, err := meshlink.DecodeExport(j)
		if err != nil || !x.Equal(again) {
			t.Fatalf("round trip of %s: %+v (%v)", j, again, err)
		}
	})
}

// FuzzDecodeLink: a link that decodes re-encodes to one that decodes
// equal, and its transform compiles.
func FuzzDecodeLink(f *testing.F) {
	for _, d := range meshDocs(f, meshlink.KindLink) {
		f.Add(d)
	}
	f.Add("kind: Link\nname: l\npeer: orders\nurl: nats-leaf://127.0.0.1:7422\nexport: e\nstart: 42\non_error: stop\n")
	f.Add("kind: Link\nname: l\npeer: orders\nurl: x\nexport: e\nstart: new\ntransform: {filter: 'data.total >', type: \"'A'\"}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		l, err := meshlink.DecodeLink([]byte(doc))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if _, err := meshlink.Compile(l.Transform); err != nil {
			t.Fatalf("a decoded link's transform does not compile: %v", err)
		}
		j, _ := json.Marshal(l)
		again, err := meshlink.DecodeLink(j)
		if err != nil || !l.Equal(again) {
			t.Fatalf("round trip of %s: %+v (%v)", j, again, err)
		}
	})
}

// FuzzTransform runs fuzzed transforms on fuzzed data: an event is kept
// with subject tokens and object data, dropped, or refused with an error.
func FuzzTransform(f *testing.F) {
	f.Add("data.total > 10", "'InvoiceRequested'", "'billing'", "event.id", "{order: event.id, amount: data.total}", []byte(`{"total":30}`))
	f.Add("", "'Invoice Requested'", "''", "data", "data.total", []byte(`{"total":"x"}`))
	f.Add("data.total", "", "", "", "{x: data.customer.name.first}", []byte(`[]`))
	f.Fuzz(func(t *testing.T, filter, typ, agg, id, data string, body []byte) {
		tr, err := meshlink.Compile(meshlink.Transform{Filter: filter, Type: typ, Aggregate: agg, ID: id, Data: data})
		if err != nil {
			return
		}
		var d any
		if json.Unmarshal(body, &d) != nil {
			d = map[string]any{"total": 1.0}
		}
		in := meshlink.Event{Aggregate: "order", ID: "o-1", Type: "OrderPlaced", EventID: "e-1", Node: "orders", Seq: 3, Data: d}
		out, keep, err := tr.Transform(in)
		if err != nil || !keep {
			return
		}
		for _, tok := range []string{out.Type, out.Aggregate, out.ID} {
			if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
				t.Fatalf("kept an event with token %q: %+v", tok, out)
			}
		}
		if data != "" {
			if _, ok := out.Data.(map[string]any); !ok {
				t.Fatalf("kept data %T, want an object", out.Data)
			}
		}
	})
}
