package schemas_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

// reasons runs CheckCompatible from prev to next (YAML schemas) and returns
// its reasons, nil when compatible.
func reasons(t testing.TB, prev, next string) []string {
	t.Helper()
	err := schemas.CheckCompatible(eventType(t, 1, prev), eventType(t, 2, next))
	if err == nil {
		return nil
	}
	var inc *schemas.IncompatibleError
	if !errors.As(err, &inc) {
		t.Fatalf("got error %v (%T), want *IncompatibleError", err, err)
	}
	if inc.Key != "x.A" || inc.From != 1 || inc.To != 2 {
		t.Fatalf("got key %q from %d to %d, want x.A from 1 to 2", inc.Key, inc.From, inc.To)
	}
	return inc.Reasons
}

func TestCheckCompatible(t *testing.T) {
	cases := []struct {
		name, prev, next string
		want             []string // nil: compatible
	}{
		// Compatible changes.
		{"identical", `{type: object, required: [a], properties: {a: {type: string}}}`, `{type: object, required: [a], properties: {a: {type: string}}}`, nil},
		{"optional property added", `{type: object, properties: {a: {type: string}}}`, `{type: object, properties: {a: {type: string}, b: {type: object, required: [c]}}}`, nil},
		{"requirement removed", `{type: object, required: [a], properties: {a: {}}}`, `{type: object, properties: {a: {}}}`, nil},
		{"type widened", `{type: string}`, `{type: [string, "null"]}`, nil},
		{"integer to number", `{type: integer}`, `{type: number}`, nil},
		{"type dropped", `{type: string}`, `{}`, nil},
		{"enum value added", `{enum: [a, b]}`, `{enum: [b, a, c]}`, nil},
		{"enum dropped", `{type: string, enum: [a, b]}`, `{type: string}`, nil},
		{"bounds widened", `{minimum: 1, maximum: 5, minLength: 2, maxLength: 3, minItems: 1, maxItems: 2}`, `{minimum: 0, maximum: 6, minLength: 1, maxItems: 9}`, nil},
		{"same pattern and format", `{pattern: "^a", format: email}`, `{pattern: "^a", format: email}`, nil},
		{"additionalProperties false dropped", `{additionalProperties: false}`, `{additionalProperties: true}`, nil},
		{"multipleOf divided", `{multipleOf: 4}`, `{multipleOf: 2}`, nil},
		{"multipleOf fractional", `{multipleOf: 0.3}`, `{multipleOf: 0.1}`, nil},
		{"from false", `false`, `{type: string}`, nil},
		{"to true", `{type: string}`, `true`, nil},
		{"$ref and $defs ignored", `{$ref: "#/$defs/a", $defs: {a: {type: string}}}`, `{$ref: "#/$defs/a", $defs: {a: {type: integer}}}`, nil},

		// Refused changes.
		{"property became required", `{type: object, properties: {a: {}}}`, `{type: object, required: [a], properties: {a: {}}}`,
			[]string{`field "/a" became required`}},
		{"new required property", `{type: object, properties: {a: {}}}`, `{type: object, required: [b], properties: {a: {}, b: {}}}`,
			[]string{`field "/b" became required`}},
		{"nested property became required", `{properties: {customer: {properties: {email: {type: string}}}}}`, `{properties: {customer: {required: [email], properties: {email: {type: string}}}}}`,
			[]string{`field "/customer/email" became required`}},
		{"property removed", `{properties: {total: {type: number}, a: {}}}`, `{properties: {a: {}}}`,
			[]string{`field "/total" was removed`}},
		{"type narrowed", `{properties: {total: {type: number}}}`, `{properties: {total: {type: integer}}}`,
			[]string{`type of "/total" narrowed from [number] to [integer]`}},
		{"type narrowed from a list", `{type: [string, "null", object]}`, `{type: [object, string]}`,
			[]string{`type of "/" narrowed from [null object string] to [object string]`}},
		{"type added", `{properties: {a: {}}}`, `{properties: {a: {type: string}}}`,
			[]string{`type of "/a" narrowed from [any] to [string]`}},
		{"type changed", `{type: string}`, `{type: boolean}`,
			[]string{`type of "/" narrowed from [string] to [boolean]`}},
		{"enum value removed", `{properties: {s: {enum: [open, closed, 1]}}}`, `{properties: {s: {enum: [open]}}}`,
			[]string{`enum of "/s" no longer allows "closed"`, `enum of "/s" no longer allows 1`}},
		{"enum added", `{properties: {s: {type: string}}}`, `{properties: {s: {enum: [a, b]}}}`,
			[]string{`enum of "/s" added: ["a","b"]`}},
		{"const added", `{properties: {v: {type: integer}}}`, `{properties: {v: {const: 2}}}`,
			[]string{`const of "/v" added: 2`}},
		{"const changed", `{properties: {v: {const: 1}}}`, `{properties: {v: {const: 2}}}`,
			[]string{`const of "/v" changed from 1 to 2`}},
		{"additionalProperties became false", `{type: object}`, `{type: object, additionalProperties: false}`,
			[]string{`additionalProperties of "/" set to false`}},
		{"additionalProperties true became false", `{properties: {o: {additionalProperties: true}}}`, `{properties: {o: {additionalProperties: false}}}`,
			[]string{`additionalProperties of "/o" set to false`}},
		{"lower bounds raised", `{minimum: 0, exclusiveMinimum: 0, minLength: 1, minItems: 1}`, `{minimum: 1, exclusiveMinimum: 0.5, minLength: 2, minItems: 3}`,
			[]string{`minimum of "/" raised from 0 to 1`, `exclusiveMinimum of "/" raised from 0 to 0.5`, `minLength of "/" raised from 1 to 2`, `minItems of "/" raised from 1 to 3`}},
		{"lower bounds added", `{}`, `{minimum: 0, exclusiveMinimum: 0, minLength: 1, minItems: 1}`,
			[]string{`minimum of "/" added: 0`, `exclusiveMinimum of "/" added: 0`, `minLength of "/" added: 1`, `minItems of "/" added: 1`}},
		{"upper bounds lowered", `{maximum: 10, exclusiveMaximum: 10, maxLength: 10, maxItems: 10}`, `{maximum: 9, exclusiveMaximum: 9.5, maxLength: 3, maxItems: 1}`,
			[]string{`maximum of "/" lowered from 10 to 9`, `exclusiveMaximum of "/" lowered from 10 to 9.5`, `maxLength of "/" lowered from 10 to 3`, `maxItems of "/" lowered from 10 to 1`}},
		{"upper bounds added", `{}`, `{maximum: 10, exclusiveMaximum: 10, maxLength: 10, maxItems: 10}`,
			[]string{`maximum of "/" added: 10`, `exclusiveMaximum of "/" added: 10`, `maxLength of "/" added: 10`, `maxItems of "/" added: 10`}},
		{"object size bounds", `{minProperties: 1}`, `{minProperties: 2, maxProperties: 5}`,
			[]string{`minProperties of "/" raised from 1 to 2`, `maxProperties of "/" added: 5`}},
		{"pattern added", `{properties: {sku: {type: string}}}`, `{properties: {sku: {type: string, pattern: "^[A-Z]+$"}}}`,
			[]string{`pattern of "/sku" added: "^[A-Z]+$"`}},
		{"pattern changed", `{pattern: "^a"}`, `{pattern: "^b"}`,
			[]string{`pattern of "/" changed from "^a" to "^b"`}},
		{"format added", `{properties: {e: {type: string}}}`, `{properties: {e: {type: string, format: email}}}`,
			[]string{`format of "/e" added: "email"`}},
		{"format changed", `{format: email}`, `{format: uri}`,
			[]string{`format of "/" changed from "email" to "uri"`}},
		{"multipleOf added", `{type: number}`, `{type: number, multipleOf: 0.5}`,
			[]string{`multipleOf of "/" added: 0.5`}},
		{"multipleOf changed", `{multipleOf: 2}`, `{multipleOf: 3}`,
			[]string{`multipleOf of "/" changed from 2 to 3`}},
		{"uniqueItems set", `{type: array}`, `{type: array, uniqueItems: true}`,
			[]string{`uniqueItems of "/" set to true`}},
		{"to false", `{properties: {a: {type: string}}}`, `{properties: {a: false}}`,
			[]string{`"/a" no longer accepts any value`}},
		{"from true", `{properties: {a: true}}`, `{properties: {a: {type: string}}}`,
			[]string{`type of "/a" narrowed from [any] to [string]`}},
		{"items narrowed", `{properties: {lines: {type: array, items: {type: object, properties: {price: {type: number}}}}}}`,
			`{properties: {lines: {type: array, items: {type: object, required: [price], properties: {price: {type: integer}}}}}}`,
			[]string{`field "/lines/*/price" became required`, `type of "/lines/*/price" narrowed from [number] to [integer]`}},
		{"items added", `{type: array}`, `{type: array, items: {type: string}}`,
			[]string{`type of "/*" narrowed from [any] to [string]`}},
		{"pointer escaping", `{properties: {"a/b": {}, "c~d": {}}}`, `{required: ["a/b"], properties: {"a/b": {}}}`,
			[]string{`field "/a~1b" became required`, `field "/c~0d" was removed`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := reasons(t, tc.prev, tc.next)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Fatalf("got reasons\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestCheckCompatibleListsEveryReason(t *testing.T) {
	prev := `{type: object, required: [customer], properties: {
		customer: {type: object, properties: {name: {type: string}, email: {type: string}}},
		total: {type: number, minimum: 0},
		status: {enum: [open, closed]},
		lines: {type: array, items: {properties: {sku: {type: string}}}}}}`
	next := `{type: object, additionalProperties: false, required: [customer, status], properties: {
		customer: {type: object, required: [email], properties: {email: {type: string, format: email}}},
		total: {type: integer, minimum: 1},
		status: {enum: [open]},
		lines: {type: array, maxItems: 50, items: {properties: {sku: {type: string, pattern: "^S"}}}}}}`
	got := reasons(t, prev, next)
	want := []string{
		`additionalProperties of "/" set to false`,
		`field "/status" became required`,
		`field "/customer/email" became required`,
		`format of "/customer/email" added: "email"`,
		`field "/customer/name" was removed`,
		`maxItems of "/lines" added: 50`,
		`pattern of "/lines/*/sku" added: "^S"`,
		`enum of "/status" no longer allows "closed"`,
		`type of "/total" narrowed from [number] to [integer]`,
		`minimum of "/total" raised from 0 to 1`,
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("got reasons\n%q\nwant\n%q", got, want)
	}
}

func TestIncompatibleErrorMessage(t *testing.T) {
	prev := decode(t, "kind: EventType\nname: OrderPlaced\naggregate: order\nversion: 1\nschema: {properties: {total: {type: number}}}\n")
	next := decode(t, "kind: EventType\nname: OrderPlaced\naggregate: order\nversion: 2\nschema: {required: [email], properties: {}}\n")
	err := schemas.CheckCompatible(prev, next)
	const want = `contract order.OrderPlaced version 2 is not compatible with version 1: field "/email" became required; field "/total" was removed`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestCheckCompatibleOtherEventType(t *testing.T) {
	prev := eventType(t, 1, `{}`)
	next := decode(t, "kind: EventType\nname: B\naggregate: x\nversion: 2\nschema: {}\n")
	err := schemas.CheckCompatible(prev, next)
	const want = "check compatibility of x.B with x.A: not the same event type"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	var inc *schemas.IncompatibleError
	if errors.As(err, &inc) {
		t.Fatalf("got *IncompatibleError %v, want a plain error", inc)
	}
}
