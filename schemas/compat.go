package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// IncompatibleError says why a new contract version is not backward
// compatible with the previous one.
type IncompatibleError struct {
	// Key is the contract's Key, e.g. "order.OrderPlaced".
	Key string
	// From is the previous version, To the refused one.
	From, To int
	// Reasons are sentences naming the JSON path of each change, e.g.
	// `field "/customer/email" became required`.
	Reasons []string
}

// Error lists every reason.
func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("contract %s version %d is not compatible with version %d: %s",
		e.Key, e.To, e.From, strings.Join(e.Reasons, "; "))
}

// CheckCompatible reports why next would reject data that prev, the
// previous version, accepts: producers of prev's events would break. It
// returns nil when next is compatible, else an *IncompatibleError listing
// every reason found.
//
// The check is structural, not full schema containment. It walks both
// schemas through "properties" and "items" and refuses:
//   - a property required in next but not in prev ("became required");
//   - a property of prev's "properties" missing from next's ("was removed");
//   - a narrower "type" ("integer" counts as a "number"; no type is any type);
//   - an "enum" that loses a value or appears, a "const" that changes or appears;
//   - "additionalProperties" becoming false;
//   - a lower bound ("minimum", "exclusiveMinimum", "minLength", "minItems",
//     "minProperties") that rises or appears, an upper bound ("maximum",
//     "exclusiveMaximum", "maxLength", "maxItems", "maxProperties") that falls
//     or appears, a "multipleOf" that no longer divides the previous one,
//     "uniqueItems" becoming true, a "pattern" or "format" that changes or appears;
//   - a schema becoming false.
//
// It does not follow "$ref" or "$defs", nor look into "allOf", "anyOf",
// "oneOf", "not", "prefixItems", "additionalProperties" schemas or
// conditionals: changes there are not reported. Paths in reasons are JSON
// pointers into the data, "/" for the root, with "*" standing for every
// item of an array: "/lines/*/price".
func CheckCompatible(prev, next *Contract) error {
	if prev == nil || next == nil {
		return fmt.Errorf("check compatibility: a contract is missing")
	}
	if prev.Key() != next.Key() {
		return fmt.Errorf("check compatibility of %s with %s: not the same event type", next.Key(), prev.Key())
	}
	var a, b any
	if err := json.Unmarshal(prev.Schema, &a); err != nil {
		return fmt.Errorf("check compatibility of %s: version %d schema: %w", prev.Key(), prev.Version, err)
	}
	if err := json.Unmarshal(next.Schema, &b); err != nil {
		return fmt.Errorf("check compatibility of %s: version %d schema: %w", next.Key(), next.Version, err)
	}
	var d differ
	d.compare("", a, b)
	if len(d.reasons) == 0 {
		return nil
	}
	return &IncompatibleError{Key: next.Key(), From: prev.Version, To: next.Version, Reasons: d.reasons}
}

// differ collects the reasons, in the order of the walk: by path, keys sorted.
type differ struct{ reasons []string }

func (d *differ) add(format string, args ...any) {
	d.reasons = append(d.reasons, fmt.Sprintf(format, args...))
}

// compare compares the schemas a (previous) and b (next) of the data at path.
func (d *differ) compare(path string, a, b any) {
	sa, okA := asObject(a)
	sb, okB := asObject(b)
	switch {
	case a == false:
		return // nothing was valid, nothing can break
	case b == false:
		d.add("%s no longer accepts any value", quotePath(path))
		return
	case !okA || !okB:
		return // not a schema; it compiled, so this is not reached
	}
	d.compareValues(path, sa, sb)
	d.compareBounds(path, sa, sb)
	d.compareObjects(path, sa, sb)
	d.compareArrays(path, sa, sb)
}

func (d *differ) compareValues(path string, a, b map[string]any) {
	at := quotePath(path)
	if tb := typeSet(b["type"]); tb != nil {
		ta := typeSet(a["type"])
		narrowed := ta == nil
		for t := range ta {
			if !tb[t] && !(t == "integer" && tb["number"]) {
				narrowed = true
			}
		}
		if narrowed {
			d.add("type of %s narrowed from %s to %s", at, typeList(ta), typeList(tb))
		}
	}
	if eb, ok := b["enum"].([]any); ok {
		if ea, had := a["enum"].([]any); !had {
			d.add("enum of %s added: %s", at, jsonText(eb))
		} else {
			for _, v := range ea {
				if !containsValue(eb, v) {
					d.add("enum of %s no longer allows %s", at, jsonText(v))
				}
			}
		}
	}
	if cb, ok := b["const"]; ok {
		if ca, had := a["const"]; !had {
			d.add("const of %s added: %s", at, jsonText(cb))
		} else if !reflect.DeepEqual(ca, cb) {
			d.add("const of %s changed from %s to %s", at, jsonText(ca), jsonText(cb))
		}
	}
	for _, k := range []string{"pattern", "format"} {
		if vb, ok := b[k]; ok {
			if va, had := a[k]; !had {
				d.add("%s of %s added: %s", k, at, jsonText(vb))
			} else if !reflect.DeepEqual(va, vb) {
				d.add("%s of %s changed from %s to %s", k, at, jsonText(va), jsonText(vb))
			}
		}
	}
}

// compareBounds refuses lower bounds that rise and upper bounds that fall.
func (d *differ) compareBounds(path string, a, b map[string]any) {
	at := quotePath(path)
	for _, k := range []string{"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"} {
		if nb, ok := b[k].(float64); ok {
			if na, had := a[k].(float64); !had {
				d.add("%s of %s added: %s", k, at, num(nb))
			} else if nb > na {
				d.add("%s of %s raised from %s to %s", k, at, num(na), num(nb))
			}
		}
	}
	for _, k := range []string{"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"} {
		if nb, ok := b[k].(float64); ok {
			if na, had := a[k].(float64); !had {
				d.add("%s of %s added: %s", k, at, num(nb))
			} else if nb < na {
				d.add("%s of %s lowered from %s to %s", k, at, num(na), num(nb))
			}
		}
	}
	if mb, ok := b["multipleOf"].(float64); ok {
		if ma, had := a["multipleOf"].(float64); !had {
			d.add("multipleOf of %s added: %s", at, num(mb))
		} else if q := ma / mb; math.Abs(q-math.Round(q)) > 1e-9 {
			d.add("multipleOf of %s changed from %s to %s", at, num(ma), num(mb))
		}
	}
	if b["uniqueItems"] == true && a["uniqueItems"] != true {
		d.add("uniqueItems of %s set to true", at)
	}
}

func (d *differ) compareObjects(path string, a, b map[string]any) {
	if b["additionalProperties"] == false && a["additionalProperties"] != false {
		d.add("additionalProperties of %s set to false", quotePath(path))
	}
	ra, rb := stringSet(a["required"]), stringSet(b["required"])
	for _, f := range sortedKeys(rb) {
		if !ra[f] {
			d.add("field %s became required", quotePath(path+"/"+escape(f)))
		}
	}
	pa, _ := a["properties"].(map[string]any)
	pb, _ := b["properties"].(map[string]any)
	for _, f := range sortedKeys(pa) {
		p := path + "/" + escape(f)
		vb, present := pb[f]
		if !present {
			d.add("field %s was removed", quotePath(p))
			continue
		}
		d.compare(p, pa[f], vb)
	}
}

// compareArrays compares "items" in its 2020-12 form, one schema for every
// item; an absent "items" accepts any item.
func (d *differ) compareArrays(path string, a, b map[string]any) {
	ib, ok := b["items"]
	if !ok {
		return
	}
	ia, ok := a["items"]
	if !ok {
		ia = true
	}
	if _, tuple := ia.([]any); tuple {
		return // draft-07 tuple form: not compared
	}
	if _, tuple := ib.([]any); tuple {
		return
	}
	d.compare(path+"/*", ia, ib)
}

// asObject reads a schema as an object; true is the empty schema.
func asObject(s any) (map[string]any, bool) {
	if s == true {
		return map[string]any{}, true
	}
	m, ok := s.(map[string]any)
	return m, ok
}

// typeSet reads "type" as a set; nil means any type.
func typeSet(v any) map[string]bool {
	switch t := v.(type) {
	case string:
		return map[string]bool{t: true}
	case []any:
		return stringSet(t)
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
	list, _ := v.([]any)
	for _, x := range list {
		if str, ok := x.(string); ok {
			s[str] = true
		}
	}
	return s
}

// quotePath quotes a JSON pointer for a reason, the root as "/".
func quotePath(p string) string {
	if p == "" {
		p = "/"
	}
	return strconv.Quote(p)
}

// escape escapes a property name as a JSON pointer token.
func escape(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func containsValue(list []any, v any) bool {
	for _, x := range list {
		if reflect.DeepEqual(x, v) {
			return true
		}
	}
	return false
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
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
