package projection

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/vm"

	"github.com/datamesh/datamesh/projection/expression"
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
// folder's runner (VM and environment) from one event to the next.
type exprFolder struct {
	key *vm.Program
	// keyField is set when the key is event.<field>, which Key then reads
	// without running the expression.
	keyField string
	handlers map[string]*vm.Program

	run expression.Runner
}

var _ Folder = (*exprFolder)(nil)

// compileSpec compiles every expression of s.
func compileSpec(s *Spec) (*exprFolder, error) {
	f := &exprFolder{handlers: map[string]*vm.Program{}}
	var errs []error
	var err error
	if strings.TrimSpace(s.Key) == "" {
		errs = append(errs, &FieldError{Path: "key", Msg: "an expression is required (for example event.id)"})
	} else if f.key, err = expression.Compile("key", s.Key); err != nil {
		errs = append(errs, err)
	} else if field, ok := expression.EventField(s.Key); ok {
		f.keyField = field
	}
	for _, t := range sortedKeys(s.Handlers) {
		if f.handlers[t], err = expression.Compile("handlers."+t, s.Handlers[t]); err != nil {
			errs = append(errs, err)
		}
	}
	return f, errors.Join(errs...)
}

// attrs is what an expression sees of ev.
func (ev *Event) attrs() expression.Event {
	return expression.Event{ID: ev.ID, EventID: ev.EventID, Type: ev.Type, Aggregate: ev.Aggregate,
		Source: ev.Source, Time: ev.Time, Seq: ev.Seq}
}

func (f *exprFolder) Key(ev *Event, data any) (string, error) {
	var out any
	if f.keyField != "" {
		a := ev.attrs()
		out = expression.Field(&a, f.keyField)
	} else {
		var err error
		a := ev.attrs()
		if out, err = f.run.Run(f.key, &a, data, nil); err != nil {
			return "", fmt.Errorf("key: %v", err)
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
	a := ev.attrs()
	out, err := f.run.Run(p, &a, data, doc)
	if err != nil {
		return nil, false, fmt.Errorf("handler %s: %v", ev.Type, err)
	}
	if expression.IsDelete(out) {
		return nil, true, nil
	}
	switch d := out.(type) {
	case nil:
		return nil, false, nil
	case map[string]any:
		return d, false, nil
	}
	return nil, false, fmt.Errorf("handler %s gave %T, want a document (an object) or delete()", ev.Type, out)
}
