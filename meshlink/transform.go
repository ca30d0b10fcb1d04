package meshlink

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/vm"

	"github.com/datamesh/datamesh/projection/expression"
	"github.com/datamesh/datamesh/schemas"
)

// Event is an imported event as a transformer sees it, and as it returns it.
type Event struct {
	Aggregate string // the aggregate (category), e.g. order
	ID        string // the aggregate id, e.g. o-1
	Type      string // the event type, e.g. OrderPlaced
	EventID   string // the owner's ce-id
	Source    string
	Time      string
	Node      string // the owner's node name
	Seq       uint64 // the owner's seq of the event
	Data      any    // decoded JSON data
}

// Transformer turns an event imported by a link into the recipient's
// event. keep=false drops the event (a filter); an error sends it to the
// link's dead-letter list (or stops the link, with on_error: stop).
type Transformer interface {
	Transform(in Event) (out Event, keep bool, err error)
}

// TransformFunc is a Transformer written as a function, for programs that
// embed a node (Node.RegisterTransformer).
type TransformFunc func(in Event) (Event, bool, error)

// Transform calls f.
func (f TransformFunc) Transform(in Event) (Event, bool, error) { return f(in) }

// exprTransformer runs a link's compiled expressions.
type exprTransformer struct {
	filter, typ, aggregate, id, data *vm.Program
}

// Compile compiles a link's transform expressions. The environment is the
// projections' one: event (id, type, aggregate, event_id, source, time, seq)
// and data, with merge, now and + on numbers, strings and arrays.
func Compile(t Transform) (Transformer, error) {
	x := &exprTransformer{}
	var errs []error
	for _, f := range []struct {
		path, src string
		p         **vm.Program
	}{
		{"transform.filter", t.Filter, &x.filter},
		{"transform.type", t.Type, &x.typ},
		{"transform.aggregate", t.Aggregate, &x.aggregate},
		{"transform.id", t.ID, &x.id},
		{"transform.data", t.Data, &x.data},
	} {
		if strings.TrimSpace(f.src) == "" {
			continue
		}
		p, err := expression.Compile(f.path, f.src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*f.p = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return x, nil
}

// Transform applies the expressions in order: filter, then type,
// aggregate, id and data, each seeing the original event.
func (x *exprTransformer) Transform(in Event) (Event, bool, error) {
	pe := &expression.Event{ID: in.ID, EventID: in.EventID, Type: in.Type, Aggregate: in.Aggregate,
		Source: in.Source, Time: in.Time, Seq: in.Seq}
	out := in
	if x.filter != nil {
		v, err := expression.Run(x.filter, pe, in.Data)
		if err != nil {
			return out, false, fmt.Errorf("filter: %w", err)
		}
		keep, ok := v.(bool)
		if !ok {
			return out, false, fmt.Errorf("filter gave %T, want true or false", v)
		}
		if !keep {
			return out, false, nil
		}
	}
	for _, f := range []struct {
		name string
		p    *vm.Program
		dst  *string
	}{{"type", x.typ, &out.Type}, {"aggregate", x.aggregate, &out.Aggregate}, {"id", x.id, &out.ID}} {
		if f.p == nil {
			continue
		}
		v, err := expression.Run(f.p, pe, in.Data)
		if err != nil {
			return out, false, fmt.Errorf("%s: %w", f.name, err)
		}
		s, err := tokenOf(v)
		if err != nil {
			return out, false, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = s
	}
	if x.data != nil {
		v, err := expression.Run(x.data, pe, in.Data)
		if err != nil {
			return out, false, fmt.Errorf("data: %w", err)
		}
		if _, ok := v.(map[string]any); !ok {
			return out, false, fmt.Errorf("data gave %T, want an object", v)
		}
		out.Data = v
	}
	return out, true, nil
}

// tokenOf turns an expression's result into a subject token.
func tokenOf(v any) (string, error) {
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case int:
		s = strconv.Itoa(t)
	case float64:
		s = strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return "", fmt.Errorf("gave %T, want a string", v)
	}
	if !schemas.ValidToken(s) {
		return "", fmt.Errorf("%q is not one NATS token (no '.', '*', '>' or whitespace, not empty)", s)
	}
	return s, nil
}

// Redact removes the fields at paths (dotted, such as customer.email) from
// a decoded JSON object, in place. Missing fields are ignored.
func Redact(data any, paths []string) {
	for _, p := range paths {
		parts := strings.Split(p, ".")
		cur, ok := data.(map[string]any)
		for i := 0; ok && i < len(parts)-1; i++ {
			cur, ok = cur[parts[i]].(map[string]any)
		}
		if ok {
			delete(cur, parts[len(parts)-1])
		}
	}
}
