package meshlink_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/meshlink"
)

const exportDoc = `kind: Export
name: public-orders
to: [billing]
aggregates: [order]
types: [OrderPlaced, OrderShipped]
redact: [card_number, customer.email]
`

const linkDoc = `kind: Link
name: orders-to-billing
peer: orders
url: nats-leaf://127.0.0.1:7422
export: public-orders
transform:
  filter: "data.total > 0"
  type: "event.type == 'OrderPlaced' ? 'InvoiceRequested' : event.type"
  aggregate: "'invoice'"
  id: "event.id"
  data: "{order: event.id, amount: data.total, customer: data.customer}"
start: beginning
`

func TestDecodeExport(t *testing.T) {
	e, err := meshlink.DecodeExport([]byte(exportDoc))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Grants("billing") || e.Grants("shipping") {
		t.Fatalf("grants: %+v", e.To)
	}
	for _, tc := range []struct {
		agg, typ string
		want     bool
	}{{"order", "OrderPlaced", true}, {"order", "ItemAdded", false}, {"invoice", "OrderPlaced", false}} {
		if got := e.Selects(tc.agg, tc.typ); got != tc.want {
			t.Errorf("Selects(%s, %s) = %v", tc.agg, tc.typ, got)
		}
	}
	all, err := meshlink.DecodeExport([]byte("kind: Export\nname: all\nto: [b]\naggregates: [order]\n"))
	if err != nil || !all.Selects("order", "Anything") {
		t.Fatalf("an export without types selects every type: %v", err)
	}
}

func TestDecodeExportErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", exportDoc + "color: red\n", "color"},
		{"no peer", "kind: Export\nname: x\nto: []\naggregates: [order]\n", "to: name at least one peer"},
		{"bad aggregate", "kind: Export\nname: x\nto: [b]\naggregates: [or.der]\n", `line 4: aggregates: "or.der" must be one NATS token`},
		{"bad redact path", "kind: Export\nname: x\nto: [b]\naggregates: [order]\nredact: [\"a..b\"]\n", `line 5: redact: "a..b"`},
		{"bad name", "kind: Export\nname: \"a b\"\nto: [b]\naggregates: [order]\n", `line 2: name: "a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := meshlink.DecodeExport([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDecodeLink(t *testing.T) {
	l, err := meshlink.DecodeLink([]byte(linkDoc))
	if err != nil {
		t.Fatal(err)
	}
	if l.Peer != "orders" || l.Export != "public-orders" || l.OnErrorPolicy() != meshlink.OnErrorSkip || l.Start.Policy != meshlink.StartBeginning {
		t.Fatalf("link: %+v", l)
	}
	for _, tc := range []struct {
		start  string
		policy string
		seq    uint64
	}{{"new", meshlink.StartNew, 0}, {"42", "", 42}, {`"42"`, "", 42}, {"beginning", meshlink.StartBeginning, 0}} {
		l, err := meshlink.DecodeLink([]byte(strings.Replace(linkDoc, "start: beginning", "start: "+tc.start, 1)))
		if err != nil {
			t.Fatalf("start %s: %v", tc.start, err)
		}
		if l.Start.Policy != tc.policy || l.Start.Seq != tc.seq {
			t.Fatalf("start %s decoded as %+v", tc.start, l.Start)
		}
		// The stored form (JSON) reads back the same.
		b, _ := json.Marshal(l)
		var back meshlink.Link
		if err := json.Unmarshal(b, &back); err != nil || !back.Equal(l) {
			t.Fatalf("start %s: JSON round trip %s: %v", tc.start, b, err)
		}
	}
}

func TestDecodeLinkErrors(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"credentials in the url", "nats-leaf://127.0.0.1", "nats-leaf://u:p@127.0.0.1", "credentials do not belong in a resource"},
		{"not a leaf url", "nats-leaf://127.0.0.1:7422", "http://x", "want the peer's leafnode address"},
		{"bad expression", `data: "{order`, `data: "{order: (`, "line 11: transform.data"},
		{"bad start", "start: beginning", "start: yesterday", "start"},
		{"zero start", "start: beginning", "start: 0", "start"},
		{"bad on_error", "start: beginning", "start: beginning\non_error: ignore", `on_error: "ignore"`},
		{"unknown field", "start: beginning", "start: beginning\nretries: 3", "retries"},
		{"unknown transform field", "  filter:", "  filtre: \"true\"\n  filter:", "filtre"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(linkDoc, tc.from, tc.to, 1)
			if doc == linkDoc {
				t.Fatalf("the case changes nothing")
			}
			_, err := meshlink.DecodeLink([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
