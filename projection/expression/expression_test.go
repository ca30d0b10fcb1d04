package expression_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/datamesh/datamesh/projection/expression"
)

func run(t *testing.T, src string, data any) any {
	t.Helper()
	p, err := expression.Compile("test", src)
	if err != nil {
		t.Fatalf("compile %s: %v", src, err)
	}
	ev := &expression.Event{ID: "o-1", Type: "OrderPlaced", Aggregate: "order", Time: "2026-01-01T00:00:00Z", Seq: 7}
	out, err := expression.Run(p, ev, data)
	if err != nil {
		t.Fatalf("run %s: %v", src, err)
	}
	return out
}

func TestPlusDecidesAtRunTime(t *testing.T) {
	data := map[string]any{"n": 2, "f": 1.5, "s": "a", "list": []any{1}}
	for _, tc := range []struct {
		src  string
		want any
	}{
		{"data.n + 1", 3},
		{"data.n + data.f", 3.5},
		{"data.s + 'b'", "ab"},
		{"data.list + [2]", []any{1, 2}},
		{"data.missing + 'x'", "x"},
		{"data.missing + [1]", []any{1}},
		{"event.seq + 1", 8},
		{"now()", "2026-01-01T00:00:00Z"},
		{"merge({a: 1, b: 1}, nil, {b: 2})", map[string]any{"a": 1, "b": 2}},
	} {
		if got := run(t, tc.src, data); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.src, got, tc.want)
		}
	}
}

func TestDelete(t *testing.T) {
	if got := run(t, "delete()", nil); !expression.IsDelete(got) {
		t.Fatalf("got %#v, want the delete marker", got)
	}
	if expression.IsDelete(map[string]any{}) {
		t.Fatal("an object is not a delete")
	}
}

func TestRunErrorsAreOneLine(t *testing.T) {
	p, err := expression.Compile("test", "data.a + data.b")
	if err != nil {
		t.Fatal(err)
	}
	_, err = expression.Run(p, &expression.Event{}, map[string]any{"a": 1, "b": "x"})
	if err == nil || err.Error() != "+: cannot add int and string (1:8) | data.a + data.b | .......^" {
		t.Fatalf("got %v, want the one-line + error", err)
	}
}

func TestCompileErrorNamesTheField(t *testing.T) {
	_, err := expression.Compile("handlers.OrderPlaced", "{order")
	var fe *expression.FieldError
	if !errors.As(err, &fe) || fe.Path != "handlers.OrderPlaced" {
		t.Fatalf("got %v, want a FieldError for handlers.OrderPlaced", err)
	}
}

func TestEventField(t *testing.T) {
	if f, ok := expression.EventField(" event.aggregate "); !ok || f != "aggregate" {
		t.Fatalf("got %q %v, want aggregate", f, ok)
	}
	if _, ok := expression.EventField("event.id + 'x'"); ok {
		t.Fatal("an expression over event.id is not a plain field")
	}
	ev := &expression.Event{Seq: 3}
	if got := expression.Field(ev, "seq"); got != 3 {
		t.Fatalf("got %#v, want 3", got)
	}
}
