package schemas

import (
	"encoding/json"
	"errors"

	"github.com/tidwall/gjson"
)

// decode turns JSON data into the values jsonschema validates (maps, slices,
// strings, json.Number, bools, nil), as jsonschema.UnmarshalJSON does, faster: every append with a contract goes through it (see
// docs/performance.md). Like encoding/json, a repeated key keeps its last
// value.
func decode(data []byte) (any, error) {
	// json.Valid, not gjson.ValidBytes: its scanner is iterative and refuses
	// nesting deeper than 10,000, where gjson's validator recurses without
	// a limit.
	if !json.Valid(data) {
		return nil, errors.New("invalid JSON")
	}
	return value(gjson.ParseBytes(data)), nil
}

func value(r gjson.Result) any {
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number:
		return json.Number(r.Raw)
	case gjson.True:
		return true
	case gjson.False:
		return false
	case gjson.JSON:
		if r.IsArray() {
			out := []any{}
			r.ForEach(func(_, v gjson.Result) bool {
				out = append(out, value(v))
				return true
			})
			return out
		}
		out := map[string]any{}
		r.ForEach(func(k, v gjson.Result) bool {
			out[k.Str] = value(v)
			return true
		})
		return out
	}
	return nil
}
