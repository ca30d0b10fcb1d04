package expression_test

import (
	"encoding/json"
	"testing"

	"github.com/datamesh/datamesh/projection/expression"
)

// FuzzExpression compiles and runs an expression over fuzzed event data:
// a compile error is a *FieldError naming the field, a run-time error is
// an error with a message, never a panic.
func FuzzExpression(f *testing.F) {
	for _, src := range []string{
		"{customer: data.customer, status: 'placed', total: data.total, items: [], placed_at: now()}",
		"merge(doc, {items: doc.items + [data], total: doc.total + data.price})",
		"merge(doc, {status: 'shipped'})", "delete()", "event.id", "data.total > 10 && event.type == 'OrderPlaced'",
		"'x' + data.customer", "data.a + data.b", "[1, 2] + data.list", "merge(data, {seq: event.seq})",
		"data.customer.name.first", "{order", "1 / 0", "data?.x ?? 'none'", "len(data.items) > 0 ? data.items[0] : nil",
	} {
		f.Add(src, []byte(`{"customer":"c-1","total":30,"price":2.5,"items":[1],"a":1,"b":"2","list":[3]}`))
	}
	f.Add("data", []byte(`[1,"x",null,{"a":{}}]`))
	f.Add("data.a.b", []byte(`not json`))
	ev := &expression.Event{ID: "o-1", EventID: "e-1", Type: "OrderPlaced", Aggregate: "order",
		Source: "urn:datamesh:test", Time: "2026-01-01T00:00:00Z", Seq: 7}
	f.Fuzz(func(t *testing.T, src string, data []byte) {
		p, err := expression.Compile("handlers.T", src)
		if err != nil {
			fe, ok := err.(*expression.FieldError)
			if !ok || fe.Path != "handlers.T" || fe.Msg == "" {
				t.Fatalf("compile %q: got %T %v, want a *FieldError for handlers.T", src, err, err)
			}
			return
		}
		var d any
		if json.Unmarshal(data, &d) != nil {
			d = map[string]any{}
		}
		doc := map[string]any{"items": []any{}, "total": 1.0}
		var r expression.Runner
		if _, err := r.Run(p, ev, d, doc); err != nil && err.Error() == "" {
			t.Fatalf("run %q: empty error", src)
		}
	})
}
