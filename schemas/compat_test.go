package schemas_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

func contract(t *testing.T, version int, schema string) *schemas.Contract {
	t.Helper()
	return mustDecode(t, fmt.Sprintf("kind: EventType\nname: A\naggregate: x\nversion: %d\nschema: %s\n", version, schema))
}

func TestCheckCompatible(t *testing.T) {
	const prev = `{type: object, required: [a], properties: {a: {type: string, enum: [x, y]}, n: {type: number, minimum: 0, maximum: 10}, i: {type: integer}, o: {type: object, properties: {e: {type: string}}}, l: {type: array, items: {type: object, properties: {s: {type: string}}}}}}`
	cases := []struct {
		name, next string
		want       []string // nil: compatible
	}{
		{"identical", prev, nil},
		{"optional field added", `{type: object, required: [a], properties: {a: {type: string, enum: [x, y, z]}, n: {type: number, minimum: 0, maximum: 10}, i: {type: number}, o: {type: object, properties: {e: {type: string}}}, l: {type: array, items: {type: object, properties: {s: {type: string}}}}, new: {type: string}}}`, nil},
		{"requirement dropped, type widened", `{type: object, properties: {a: {type: [string, "null"], enum: [x, y]}, n: {type: number}, i: {type: integer}, o: {type: object, properties: {e: {}}}, l: {type: array, items: {type: object, properties: {s: {type: string}}}}}}`, nil},
		{"new required field", `{type: object, required: [a, n], properties: {a: {type: string, enum: [x, y]}, n: {type: number, minimum: 0, maximum: 10}, i: {type: integer}, o: {type: object, properties: {e: {type: string}}}, l: {type: array, items: {type: object, properties: {s: {type: string}}}}}}`,
			[]string{`field "/n" became required`}},
		{"field removed", `{type: object, required: [a], properties: {a: {type: string, enum: [x, y]}, i: {type: integer}, o: {type: object, properties: {e: {type: string}}}, l: {type: array, items: {type: object, properties: {s: {type: string}}}}}}`,
			[]string{`field "/n" was removed`}},
		{"narrowed types and bounds, nested", `{type: object, required: [a], additionalProperties: false, properties: {a: {type: string, enum: [x]}, n: {type: integer, minimum: 1, maximum: 5}, i: {type: integer}, o: {type: object, required: [e], properties: {e: {type: string, pattern: "^a"}}}, l: {type: array, items: {type: object, properties: {s: {type: number}}}}}}`,
			[]string{
				`additionalProperties of "/" set to false`,
				`enum of "/a" no longer allows "y"`,
				`type of "/l/items/s" narrowed from [string] to [number]`,
				`type of "/n" narrowed from [number] to [integer]`,
				`field "/o/e" became required`,
				`pattern of "/o/e" added or changed`,
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := schemas.CheckCompatible(contract(t, 1, prev), contract(t, 2, tc.next))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want compatible", err)
				}
				return
			}
			var inc *schemas.IncompatibleError
			if !errors.As(err, &inc) {
				t.Fatalf("got %v, want *IncompatibleError", err)
			}
			for _, w := range tc.want {
				found := false
				for _, r := range inc.Reasons {
					found = found || r == w
				}
				if !found {
					t.Fatalf("got reasons %q, want one %q", inc.Reasons, w)
				}
			}
			if inc.Key != "x.A" || inc.From != 1 || inc.To != 2 {
				t.Fatalf("got %+v", inc)
			}
		})
	}
}

func TestCheckCompatibleListsEveryReason(t *testing.T) {
	prev := contract(t, 1, `{type: object, properties: {n: {type: number, minimum: 0, maximum: 10}, s: {type: string}}}`)
	next := contract(t, 2, `{type: object, required: [s], properties: {n: {type: integer, minimum: 1, maximum: 5}, s: {type: string, maxLength: 3, format: email}}}`)
	err := schemas.CheckCompatible(prev, next)
	var inc *schemas.IncompatibleError
	if !errors.As(err, &inc) {
		t.Fatalf("got %v", err)
	}
	want := []string{
		`field "/s" became required`,
		`type of "/n" narrowed from [number] to [integer]`,
		`minimum of "/n" raised to 1`,
		`maximum of "/n" lowered to 5`,
		`maxLength of "/s" lowered to 3`,
		`format of "/s" added or changed`,
	}
	if fmt.Sprint(inc.Reasons) != fmt.Sprint(want) {
		t.Fatalf("got reasons\n%q\nwant\n%q", inc.Reasons, want)
	}
}
