package projection

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Event is what a projection sees of one stored event.
type Event struct {
	// ID is the aggregate's id: the entity the event is about (o-1).
	ID string
	// EventID is the CloudEvents id of the event itself.
	EventID   string
	Type      string
	Aggregate string
	Source    string
	Time      string
	Seq       uint64
	// Data is the event data, raw JSON.
	Data []byte
}

// Folder folds events into documents. A projection's expressions compile
// into one; services that embed a node can write one in Go (Funcs).
type Folder interface {
	// Key returns the key of the document ev touches.
	Key(ev *Event, data any) (string, error)
	// Fold returns the new document for ev, given the current one (nil if
	// none). deleted removes the document; a nil doc and !deleted leaves it as it is.
	Fold(ev *Event, data any, doc map[string]any) (out map[string]any, deleted bool, err error)
}

// Funcs is a Folder written in Go.
type Funcs struct {
	KeyFunc  func(ev *Event, data any) (string, error)
	FoldFunc func(ev *Event, data any, doc map[string]any) (map[string]any, bool, error)
}

var _ Folder = Funcs{}

// Key calls KeyFunc.
func (f Funcs) Key(ev *Event, data any) (string, error) { return f.KeyFunc(ev, data) }

// Fold calls FoldFunc.
func (f Funcs) Fold(ev *Event, data any, doc map[string]any) (map[string]any, bool, error) {
	return f.FoldFunc(ev, data, doc)
}

// exprFolder runs a spec's compiled expressions. It is not safe for
// concurrent use: a worker folds one event at a time, and reuses the
// folder's VM and environment from one event to the next.
type exprFolder struct {
	key *vm.Program
	// keyField is set when the key is event.<field>, which Key then reads
	// without running the expression.
	keyField string
	handlers map[string]*vm.Program

	vm    vm.VM
	envM  map[string]any
	nowAt string // what now() returns: the time of the event being folded
}

var _ Folder = (*exprFolder)(nil)

// deleteMarker is what delete() returns.
type deleteMarker struct{}

// compileEnv is the environment expressions are checked against. The
// functions that do not depend on the event are in exprFuncs.
func compileEnv() map[string]any {
	return map[string]any{
		"event": map[string]any{},
		"data":  map[string]any{},
		"doc":   map[string]any{},
		"now":   func() string { return "" },
	}
}

// exprFuncs are the expression language's functions, given to expr as
// functions rather than env values, which it calls without reflection
// (profiled: reflect.Value.Call was 10% of a rebuild's CPU).
var exprFuncs = []expr.Option{
	expr.Function("merge", func(p ...any) (any, error) { return merge(p...) }),
	expr.Function("add", func(p ...any) (any, error) { return add(p[0], p[1]) },
		new(func(any, any) (any, error))),
	expr.Function("delete", func(...any) (any, error) { return deleteMarker{}, nil },
		new(func() any)),
}

// plusToAdd rewrites a + b into add(a, b): fields of data and doc have no
// static type, so + must decide at run time between numbers, strings and
// arrays (doc.items + [data.item]).
type plusToAdd struct{}

func (plusToAdd) Visit(node *ast.Node) {
	if b, ok := (*node).(*ast.BinaryNode); ok && b.Operator == "+" {
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: "add"}, Arguments: []ast.Node{b.Left, b.Right}})
	}
}

func compileExpr(path, src string) (*vm.Program, error) {
	opts := append([]expr.Option{expr.Env(compileEnv()), expr.Patch(plusToAdd{})}, exprFuncs...)
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, &FieldError{Path: path, Msg: oneLine(err)}
	}
	return p, nil
}

// compileSpec compiles every expression of s.
func compileSpec(s *Spec) (*exprFolder, error) {
	f := &exprFolder{handlers: map[string]*vm.Program{}}
	var errs []error
	var err error
	if strings.TrimSpace(s.Key) == "" {
		errs = append(errs, &FieldError{Path: "key", Msg: "an expression is required (for example event.id)"})
	} else if f.key, err = compileExpr("key", s.Key); err != nil {
		errs = append(errs, err)
	} else if m := eventFieldKey.FindStringSubmatch(strings.TrimSpace(s.Key)); m != nil {
		f.keyField = m[1]
	}
	for _, t := range sortedKeys(s.Handlers) {
		if f.handlers[t], err = compileExpr("handlers."+t, s.Handlers[t]); err != nil {
			errs = append(errs, err)
		}
	}
	return f, errors.Join(errs...)
}

// eventFieldKey matches the keys that name a field of the event.
var eventFieldKey = regexp.MustCompile(`^event\.(id|event_id|type|aggregate|source|time|seq)$`)

// eventField returns the event attribute the expression event.<name> gives.
func eventField(ev *Event, name string) any {
	switch name {
	case "id":
		return ev.ID
	case "event_id":
		return ev.EventID
	case "type":
		return ev.Type
	case "aggregate":
		return ev.Aggregate
	case "source":
		return ev.Source
	case "time":
		return ev.Time
	case "seq":
		return int(ev.Seq)
	}
	return nil
}

// env returns the environment of one expression run. The map is the
// folder's own, refilled for each event; the event map is new each time,
// since a handler may return it as (part of) a document.
func (f *exprFolder) env(ev *Event, data any, doc map[string]any) map[string]any {
	if f.envM == nil {
		f.envM = compileEnv()
		f.envM["now"] = func() string { return f.nowAt }
	}
	f.envM["event"] = map[string]any{
		"id": ev.ID, "event_id": ev.EventID, "type": ev.Type, "aggregate": ev.Aggregate,
		"source": ev.Source, "time": ev.Time, "seq": int(ev.Seq),
	}
	f.envM["data"] = data
	if doc != nil {
		f.envM["doc"] = doc
	} else {
		f.envM["doc"] = nil
	}
	f.nowAt = ev.Time
	return f.envM
}

func (f *exprFolder) Key(ev *Event, data any) (string, error) {
	var out any
	if f.keyField != "" {
		out = eventField(ev, f.keyField)
	} else {
		var err error
		if out, err = f.vm.Run(f.key, f.env(ev, data, nil)); err != nil {
			return "", fmt.Errorf("key: %s", oneLine(err))
		}
	}
	switch k := out.(type) {
	case string:
		if k == "" {
			return "", errors.New("key: the expression gave an empty key")
		}
		return k, nil
	case int:
		return strconv.Itoa(k), nil
	case float64:
		return strconv.FormatFloat(k, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("key: the expression gave %T, want a string", out)
}

func (f *exprFolder) Fold(ev *Event, data any, doc map[string]any) (map[string]any, bool, error) {
	p, ok := f.handlers[ev.Type]
	if !ok {
		return nil, false, nil
	}
	out, err := f.vm.Run(p, f.env(ev, data, doc))
	if err != nil {
		return nil, false, fmt.Errorf("handler %s: %s", ev.Type, oneLine(err))
	}
	switch d := out.(type) {
	case nil:
		return nil, false, nil
	case deleteMarker:
		return nil, true, nil
	case map[string]any:
		return d, false, nil
	}
	return nil, false, fmt.Errorf("handler %s gave %T, want a document (an object) or delete()", ev.Type, out)
}

// merge returns a new object with the fields of each argument, later ones winning.
func merge(objs ...any) (any, error) {
	out := map[string]any{}
	for i, o := range objs {
		switch m := o.(type) {
		case nil:
		case map[string]any:
			maps.Copy(out, m)
		default:
			return nil, fmt.Errorf("merge: argument %d is %T, want an object", i+1, o)
		}
	}
	return out, nil
}

// add is + for untyped values: numbers add, strings and arrays concatenate,
// and nil counts as the empty value of the other side.
func add(a, b any) (any, error) {
	if a == nil {
		a, b = b, a
		if a == nil {
			return nil, nil
		}
		switch a.(type) {
		case string, []any:
			return a, nil
		}
		return nil, fmt.Errorf("+: nil and %T", a)
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return x + y, nil
		}
		if b == nil {
			return x, nil
		}
	case []any:
		if y, ok := b.([]any); ok {
			return append(append(make([]any, 0, len(x)+len(y)), x...), y...), nil
		}
		if b == nil {
			return x, nil
		}
	case int:
		switch y := b.(type) {
		case int:
			return x + y, nil
		case float64:
			return float64(x) + y, nil
		}
	case float64:
		switch y := b.(type) {
		case int:
			return x + float64(y), nil
		case float64:
			return x + y, nil
		}
	}
	return nil, fmt.Errorf("+: cannot add %T and %T", a, b)
}

// oneLine folds expr's multi-line error (message, source line, caret) into
// one line for status output and error replies.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// CompileExpression compiles src with the projection expression language
// (event, data, merge, now, + on numbers, strings and arrays), for other
// resources that reuse it, such as mesh link transforms. path names the
// field in errors.
func CompileExpression(path, src string) (*vm.Program, error) { return compileExpr(path, src) }

// RunExpression runs a program from CompileExpression for one event.
func RunExpression(p *vm.Program, ev *Event, data any) (any, error) {
	out, err := expr.Run(p, (&exprFolder{}).env(ev, data, nil))
	if err != nil {
		return nil, errors.New(oneLine(err))
	}
	return out, nil
}
