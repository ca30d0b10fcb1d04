package schemas

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// IncompatibleError says why a new contract version is not backward
// compatible with the previous one.
type IncompatibleError struct {
	Key      string
	From, To int
	Reasons  []string
}

func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("contract %s version %d is not compatible with version %d: %s",
		e.Key, e.To, e.From, strings.Join(e.Reasons, "; "))
}

// CheckCompatible reports why next would reject data that prev accepts, so
// that producers of prev's events would break. It returns nil when next is
// compatible, else an *IncompatibleError listing every reason.
//
// The check is structural, not full schema containment: it walks
// "properties" and "items" of both schemas and compares required fields,
// types, enum and const, additionalProperties, numeric and length bounds,
// pattern and format. It does not follow $ref, $defs or combinators
// (allOf, anyOf, oneOf), whose changes are not reported.
func CheckCompatible(prev, next *Contract) error {
	var a, b map[string]any
	if err := json.Unmarshal(prev.Schema, &a); err != nil {
		return fmt.Errorf("previous schema: %w", err)
	}
	if err := json.Unmarshal(next.Schema, &b); err != nil {
		return fmt.Errorf("new schema: %w", err)
	}
	var reasons []string
	compareSchemas("", a, b, &reasons)
	if len(reasons) == 0 {
		return nil
	}
	return &IncompatibleError{Key: next.Key(), From: prev.Version, To: next.Version, Reasons: reasons}
}

func compareSchemas(path string, a, b map[string]any, reasons *[]string) {
	at := func(p string) string {
		if p == "" {
			return "/"
		}
		return p
	}
	add := func(format string, args ...any) { *reasons = append(*reasons, fmt.Sprintf(format, args...)) }

	// Types.
	ta, tb := typeSet(a["type"]), typeSet(b["type"])
	if tb != nil {
		var lost []string
		for t := range ta {
			if !tb[t] && !(t == "integer" && tb["number"]) {
				lost = append(lost, t)
			}
		}
		if ta == nil || len(lost) > 0 {
			add("type of %q narrowed from %s to %s", at(path), typeList(ta), typeList(tb))
		}
	}

	// Enum and const.
	if eb, ok := b["enum"].([]any); ok {
		ea, had := a["enum"].([]any)
		if !had {
			add("enum added to %q", at(path))
		} else {
			for _, v := range ea {
				if !containsValue(eb, v) {
					add("enum of %q no longer allows %v", at(path), jsonText(v))
				}
			}
		}
	}
	if cb, ok := b["const"]; ok {
		if ca, had := a["const"]; !had || !reflect.DeepEqual(ca, cb) {
			add("const of %q added or changed", at(path))
		}
	}

	// Bounds: lower bounds may not rise, upper bounds may not fall.
	for _, k := range []string{"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"} {
		if nb, ok := number(b[k]); ok {
			if na, had := number(a[k]); !had || nb > na {
				add("%s of %q raised to %v", k, at(path), nb)
			}
		}
	}
	for _, k := range []string{"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"} {
		if nb, ok := number(b[k]); ok {
			if na, had := number(a[k]); !had || nb < na {
				add("%s of %q lowered to %v", k, at(path), nb)
			}
		}
	}
	for _, k := range []string{"pattern", "format"} {
		if sb, ok := b[k]; ok && !reflect.DeepEqual(a[k], sb) {
			add("%s of %q added or changed", k, at(path))
		}
	}

	// Objects.
	if closed(b) && !closed(a) {
		add("additionalProperties of %q set to false", at(path))
	}
	ra, rb := stringSet(a["required"]), stringSet(b["required"])
	for _, f := range sortedKeys(rb) {
		if !ra[f] {
			add("field %q became required", path+"/"+f)
		}
	}
	pa, _ := a["properties"].(map[string]any)
	pb, _ := b["properties"].(map[string]any)
	for _, f := range sortedKeys(pa) {
		sa, _ := pa[f].(map[string]any)
		vb, present := pb[f]
		if !present {
			add("field %q was removed", path+"/"+f)
			continue
		}
		sb, _ := vb.(map[string]any)
		if sa != nil && sb != nil {
			compareSchemas(path+"/"+f, sa, sb, reasons)
		}
	}

	// Arrays.
	if ib, ok := b["items"].(map[string]any); ok {
		if ia, ok := a["items"].(map[string]any); ok {
			compareSchemas(path+"/items", ia, ib, reasons)
		}
	}
}

// typeSet reads "type" as a set; nil means any type.
func typeSet(v any) map[string]bool {
	switch t := v.(type) {
	case string:
		return map[string]bool{t: true}
	case []any:
		s := map[string]bool{}
		for _, x := range t {
			if str, ok := x.(string); ok {
				s[str] = true
			}
		}
		return s
	}
	return nil
}

func typeList(s map[string]bool) string {
	if s == nil {
		return "[any]"
	}
	return "[" + strings.Join(sortedKeys(s), " ") + "]"
}

func stringSet(v any) map[string]bool {
	s := map[string]bool{}
	if list, ok := v.([]any); ok {
		for _, x := range list {
			if str, ok := x.(string); ok {
				s[str] = true
			}
		}
	}
	return s
}

func closed(s map[string]any) bool {
	b, ok := s["additionalProperties"].(bool)
	return ok && !b
}

func number(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

func containsValue(list []any, v any) bool {
	for _, x := range list {
		if reflect.DeepEqual(x, v) {
			return true
		}
	}
	return false
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
