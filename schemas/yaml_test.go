package schemas_test

import (
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

func TestYAMLToJSON(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"YAML 1.2 booleans", "y: n\nno: off\non: yes", `{"no":"off","on":"yes","y":"n"}`},
		{"timestamps stay text", "d: 2024-01-01\nt: 2024-01-01T10:00:00.10Z", `{"d":"2024-01-01","t":"2024-01-01T10:00:00.10Z"}`},
		{"non-string keys", "1: a\ntrue: b\n~: c", `{"1":"a","null":"c","true":"b"}`},
		{"anchors", "a: &x {k: 1}\nb: *x", `{"a":{"k":1},"b":{"k":1}}`},
		{"JSON", `{"a": [1, 2.5, null]}`, `{"a":[1,2.5,null]}`},
		{"empty", "", `null`},
		{"comment only", "# nothing", `null`},
		{"trailing separator", "a: 1\n---\n", `{"a":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schemas.YAMLToJSON([]byte(tc.yaml))
			if err != nil {
				t.Fatalf("got error %v, want %s", err, tc.want)
			}
			if string(got) != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestYAMLToJSONRefusals(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"two documents", "a: 1\n---\nb: 2\n", "line 2: more than one YAML document: give one resource at a time"},
		{"not YAML", "a: [", "line 1: did not find expected node content"},
		{"NaN", "a: .nan", "line 1, column 1: yaml to json: unsupported value: NaN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schemas.YAMLToJSON([]byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %s, %v; want error %q", got, err, tc.want)
			}
		})
	}
}

func TestDecodeStrict(t *testing.T) {
	var v struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	if err := schemas.DecodeStrict([]byte("name: a\ncount: 3\n"), &v); err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if v.Name != "a" || v.Count != 3 {
		t.Fatalf("got %+v, want name a, count 3", v)
	}
	const want = `line 2, column 1: unknown field "cont" (did you mean "count"?)`
	if err := schemas.DecodeStrict([]byte("name: a\ncont: 3\n"), &v); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
