package projection

import (
	"errors"
	"fmt"
	"maps"
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

// exprFolder runs a spec's compiled expressions.
type exprFolder struct {
	key      *vm.Program
	handlers map[string]*vm.Program
}

var _ Folder = (*exprFolder)(nil)

// deleteMarker is what delete() returns.
type deleteMarker struct{}

// compileEnv is the environment expressions are checked against.
func compileEnv() map[string]any {
	return map[string]any{
		"event":  map[string]any{},
		"data":   map[string]any{},
		"doc":    map[string]any{},
		"merge":  merge,
		"delete": func() any { return deleteMarker{} },
		"now":    func() string { return "" },
		"add":    add,
	}
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
	p, err := expr.Compile(src, expr.Env(compileEnv()), expr.Patch(plusToAdd{}))
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
	}
	for _, t := range sortedKeys(s.Handlers) {
		if f.handlers[t], err = compileExpr("handlers."+t, s.Handlers[t]); err != nil {
			errs = append(errs, err)
		}
	}
	return f, errors.Join(errs...)
}

func (f *exprFolder) env(ev *Event, data any, doc map[string]any) map[string]any {
	env := compileEnv()
	env["event"] = map[string]any{
		"id": ev.ID, "event_id": ev.EventID, "type": ev.Type, "aggregate": ev.Aggregate,
		"source": ev.Source, "time": ev.Time, "seq": int(ev.Seq),
	}
	env["data"] = data
	if doc != nil {
		env["doc"] = doc
	} else {
		env["doc"] = nil
	}
	t := ev.Time
	env["now"] = func() string { return t }
	return env
}

func (f *exprFolder) Key(ev *Event, data any) (string, error) {
	out, err := expr.Run(f.key, f.env(ev, data, nil))
	if err != nil {
		return "", fmt.Errorf("key: %s", oneLine(err))
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
	out, err := expr.Run(p, f.env(ev, data, doc))
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
