package expression

import (
	"fmt"
	"maps"
)

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
