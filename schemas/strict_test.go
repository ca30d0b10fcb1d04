package schemas_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

type strictItem struct {
	Field string `json:"field"`
	Count int    `json:"count,omitempty"`
}

type strictDoc struct {
	Name  string          `json:"name"`
	Items []strictItem    `json:"items"`
	Extra json.RawMessage `json:"extra,omitempty"`
	Any   any             `json:"any,omitempty"`
}

func TestDecodeStrictAsPositions(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"unknown field in a list item", "name: a\nitems:\n  - field: x\n  - feild: y\n", `line 4, column 5: unknown field "feild" in items[1] (did you mean "field"?)`},
		{"type in a list item", "items:\n  - count: many\n", `line 2, column 12: items[0].count: want an integer, got "many"`},
		{"list for a string", "name: [a]\n", `line 1, column 7: name: want a string, got a list`},
		{"top level not a mapping", "- a\n", `line 1, column 1: thing: want a mapping, got a list`},
		{"JSON", `{"name": "a", "nmae": "b"}`, `line 1, column 15: unknown field "nmae" in thing (did you mean "name"?)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v strictDoc
			err := schemas.DecodeStrictAs([]byte(tc.doc), &v, "thing")
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			var de *schemas.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%T is not a *DecodeError", err)
			}
			if got := schemas.InFile(err, "f.yaml").Error(); got[:7] != "f.yaml:" {
				t.Fatalf("InFile: got %s", got)
			}
		})
	}
	var v strictDoc
	doc := "name: a\nitems: [{field: x, count: 2}]\nextra: {anything: [1]}\nany: {x: y}\n"
	if err := schemas.DecodeStrictAs([]byte(doc), &v, "thing"); err != nil {
		t.Fatal(err)
	}
	if v.Name != "a" || len(v.Items) != 1 || v.Items[0].Count != 2 || string(v.Extra) != `{"anything":[1]}` {
		t.Fatalf("got %+v", v)
	}
}

func TestNearest(t *testing.T) {
	names := []string{"listen", "leaf_listen", "http", "name", "max_batch"}
	for word, want := range map[string]string{"listn": "listen", "Name": "name", "max_bach": "max_batch", "zz": "", "htp": "http", "colour": ""} {
		if got := schemas.Nearest(word, names); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", word, got, want)
		}
	}
}
