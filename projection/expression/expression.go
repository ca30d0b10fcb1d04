package expression

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Event is what an expression sees of one event: its attributes, as
// event.<field>. The data goes beside it, decoded.
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
}

// FieldError is a problem with one field of a resource. Compile returns
// one; resources that check their other fields report with it too, and
// fill Line from the YAML the resource came from.
type FieldError struct {
	Path string // e.g. handlers.OrderPlaced
	Line int    // YAML line, 0 if unknown
	Msg  string
}

// Error names the line, if known, and the field.
func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Path, e.Msg)
	}
	return e.Path + ": " + e.Msg
}

// deleteMarker is what delete() returns.
type deleteMarker struct{}

// IsDelete reports whether v is the result of delete(): a projection
// handler's way to remove its document.
func IsDelete(v any) bool {
	_, ok := v.(deleteMarker)
	return ok
}

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

// Compile compiles src (event, data, doc, merge, now, delete, + on
// numbers, strings and arrays). path names the field src comes from: a
// compile error is a *FieldError with that path.
func Compile(path, src string) (*vm.Program, error) {
	opts := append([]expr.Option{expr.Env(compileEnv()), expr.Patch(plusToAdd{})}, exprFuncs...)
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, &FieldError{Path: path, Msg: OneLine(err)}
	}
	return p, nil
}

// Run runs a program from Compile for one event, with doc nil. It builds
// its environment afresh; a loop over many events uses a Runner instead.
func Run(p *vm.Program, ev *Event, data any) (any, error) {
	return new(Runner).Run(p, ev, data, nil)
}

// Runner runs programs one event after another, reusing its VM and
// environment. It is not safe for concurrent use.
type Runner struct {
	vm    vm.VM
	env   map[string]any
	nowAt string // what now() returns: the time of the event being run
}

// Run runs p for ev, its decoded data and the current document (nil if
// none). Errors are one line, without expr's source excerpt.
func (r *Runner) Run(p *vm.Program, ev *Event, data any, doc map[string]any) (any, error) {
	out, err := r.vm.Run(p, r.setEnv(ev, data, doc))
	if err != nil {
		return nil, errors.New(OneLine(err))
	}
	return out, nil
}

// setEnv returns the environment of one run. The map is the runner's own,
// refilled for each event; the event map is new each time, since a handler
// may return it as (part of) a document.
func (r *Runner) setEnv(ev *Event, data any, doc map[string]any) map[string]any {
	if r.env == nil {
		r.env = compileEnv()
		r.env["now"] = func() string { return r.nowAt }
	}
	r.env["event"] = map[string]any{
		"id": ev.ID, "event_id": ev.EventID, "type": ev.Type, "aggregate": ev.Aggregate,
		"source": ev.Source, "time": ev.Time, "seq": int(ev.Seq),
	}
	r.env["data"] = data
	if doc != nil {
		r.env["doc"] = doc
	} else {
		r.env["doc"] = nil
	}
	r.nowAt = ev.Time
	return r.env
}

// eventFieldExpr matches the expressions that name a field of the event.
var eventFieldExpr = regexp.MustCompile(`^event\.(id|event_id|type|aggregate|source|time|seq)$`)

// EventField reports whether src is just event.<field>, and which field:
// a caller can then read it with Field instead of running the expression.
func EventField(src string) (field string, ok bool) {
	if m := eventFieldExpr.FindStringSubmatch(strings.TrimSpace(src)); m != nil {
		return m[1], true
	}
	return "", false
}

// Field returns the event attribute the expression event.<name> gives.
func Field(ev *Event, name string) any {
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

// OneLine folds expr's multi-line error (message, source line, caret) into
// one line for status output and error replies.
func OneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
