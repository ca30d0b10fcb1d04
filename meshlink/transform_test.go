package meshlink_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/meshlink"
)

func order(typ string, total float64) meshlink.Event {
	return meshlink.Event{Aggregate: "order", ID: "o-1", Type: typ, EventID: "e-1", Node: "orders", Seq: 7,
		Data: map[string]any{"total": total, "customer": "c-1"}}
}

func TestTransform(t *testing.T) {
	l, err := meshlink.DecodeLink([]byte(linkDoc))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := meshlink.Compile(l.Transform)
	if err != nil {
		t.Fatal(err)
	}
	out, keep, err := tr.Transform(order("OrderPlaced", 30))
	if err != nil || !keep {
		t.Fatalf("keep %v, err %v", keep, err)
	}
	want := map[string]any{"order": "o-1", "amount": 30.0, "customer": "c-1"}
	if out.Type != "InvoiceRequested" || out.Aggregate != "invoice" || out.ID != "o-1" || !reflect.DeepEqual(out.Data, want) {
		t.Fatalf("transformed: %+v", out)
	}
	if out, _, _ := tr.Transform(order("OrderShipped", 30)); out.Type != "OrderShipped" {
		t.Fatalf("the type expression keeps other types: got %s", out.Type)
	}
	if _, keep, err := tr.Transform(order("OrderPlaced", 0)); keep || err != nil {
		t.Fatalf("filter: keep %v, err %v", keep, err)
	}
}

func TestTransformDefaultsToIdentity(t *testing.T) {
	tr, err := meshlink.Compile(meshlink.Transform{})
	if err != nil {
		t.Fatal(err)
	}
	in := order("OrderPlaced", 5)
	out, keep, err := tr.Transform(in)
	if err != nil || !keep || !reflect.DeepEqual(out, in) {
		t.Fatalf("identity: %+v, %v, %v", out, keep, err)
	}
}

func TestTransformErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    meshlink.Transform
		want string
	}{
		{"filter not a boolean", meshlink.Transform{Filter: "data.total"}, "filter gave float64"},
		{"type not a token", meshlink.Transform{Type: "'Invoice Requested'"}, "type:"},
		{"empty aggregate", meshlink.Transform{Aggregate: "''"}, "aggregate:"},
		{"id not a string", meshlink.Transform{ID: "data"}, "id: gave map"},
		{"data not an object", meshlink.Transform{Data: "data.total"}, "data gave float64"},
		{"run-time error", meshlink.Transform{Data: "{x: data.customer.name.first}"}, "data:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := meshlink.Compile(tc.t)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = tr.Transform(order("OrderPlaced", 5))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := meshlink.Compile(meshlink.Transform{Type: "event.type ==", Data: "{"}); err == nil ||
		!strings.Contains(err.Error(), "transform.type") || !strings.Contains(err.Error(), "transform.data") {
		t.Fatalf("compile errors name every field: %v", err)
	}
}

func TestRedact(t *testing.T) {
	data := map[string]any{
		"card_number": "4111",
		"customer":    map[string]any{"name": "c-1", "email": "c@example.com"},
		"total":       3.0,
	}
	meshlink.Redact(data, []string{"card_number", "customer.email", "missing", "customer.address.street", "total.x"})
	want := map[string]any{"customer": map[string]any{"name": "c-1"}, "total": 3.0}
	if !reflect.DeepEqual(data, want) {
		t.Fatalf("redacted: %v", data)
	}
	meshlink.Redact([]any{1, 2}, []string{"a"}) // not an object: nothing to do, no panic
}
