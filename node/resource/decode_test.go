package resource

import (
	"strings"
	"testing"
)

const (
	contractDoc = "kind: EventType\nname: OrderPlaced\naggregate: order\nversion: 1\nschema: {type: object}\n"
	specDoc     = "kind: Projection\nname: orders\nversion: 1\nsource: {aggregates: [order], types: [OrderPlaced]}\nkey: event.id\nhandlers: {OrderPlaced: \"{}\"}\n"
)

// file is one file as `datamesh apply -f` sends it.
func file(name, body string) string { return "\n---\n" + SourceMarker + name + "\n" + body }

// TestDecodeErrorsNameFileAndLine: with several files, an error names the
// file, the document within it (when it holds several) and the line in it,
// and never says "json".
func TestDecodeErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"unknown kind in the second file", file("a.yaml", contractDoc) + file("b.yaml", "# a widget\nkind: Widget\nname: w\n"),
			`b.yaml:2:7: unknown kind "Widget" (this node knows EventType, Projection, Export and Link)`},
		{"unknown field in the second document", file("a.yaml", contractDoc) + file("b.yaml", specDoc+"---\n"+strings.Replace(specDoc, "handlers", "handler", 1)),
			`b.yaml:13:1: document 2: unknown field "handler" in projection (did you mean "handlers"?)`},
		{"type error", file("a.yaml", strings.Replace(contractDoc, "version: 1", "version: one", 1)),
			`a.yaml:4:10: version: want an integer, got "one"`},
		{"validation error", file("a.yaml", contractDoc) + file("b.yaml", contractDoc+"---\n"+strings.Replace(contractDoc, "version: 1", "version: 0", 1)),
			`b.yaml, document 2: contract "order.OrderPlaced": version must be >= 1, got 0`},
		{"YAML syntax", file("a.yaml", "kind: [EventType\n"), `a.yaml:1: did not find expected ',' or ']'`},
		{"no file, several documents", contractDoc + "---\n" + "kind: Widget\n",
			`line 7, column 7: document 2: unknown kind "Widget" (this node knows EventType, Projection, Export and Link)`},
		{"no file, one document", "kind: Projection\nname: x\nhandler: {}\n", `line 3, column 1: unknown field "handler" in projection (did you mean "handlers"?)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode([]byte(tc.body))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "json") {
				t.Fatalf("%v says json", err)
			}
		})
	}
}

func TestDecodeFiles(t *testing.T) {
	s, err := decode([]byte(file("a.yaml", contractDoc) + file("b.yaml", "---\n"+specDoc+"---\n# only a comment\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.contracts) != 1 || len(s.specs) != 1 {
		t.Fatalf("got %d contracts, %d specs; want 1, 1", len(s.contracts), len(s.specs))
	}
}
