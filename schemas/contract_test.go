package schemas_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

const orderPlaced = `
kind: EventType
name: OrderPlaced
aggregate: order
version: 1
owner: team-orders
description: A customer placed an order.
schema:
  type: object
  required: [customer, total]
  properties:
    customer: {type: string}
    total: {type: number, minimum: 0}
    items:
      type: array
      items:
        type: object
        required: [sku]
        properties:
          sku: {type: string}
`

func mustDecode(t *testing.T, doc string) *schemas.Contract {
	t.Helper()
	c, err := schemas.DecodeContract([]byte(doc))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return c
}

func TestDecodeContract(t *testing.T) {
	c := mustDecode(t, orderPlaced)
	if c.Key() != "order.OrderPlaced" || c.Version != 1 || c.Owner != "team-orders" {
		t.Fatalf("got %+v", c)
	}
	if got := c.SchemaURI(); got != "urn:datamesh:schema:order:OrderPlaced:1" {
		t.Fatalf("got schema URI %q", got)
	}
	// JSON is YAML too.
	j := mustDecode(t, `{"kind":"EventType","name":"A","aggregate":"x","version":2,"schema":{"type":"object"}}`)
	if j.Key() != "x.A" || j.Version != 2 {
		t.Fatalf("got %+v", j)
	}
}

func TestDecodeContractRefusals(t *testing.T) {
	base := "kind: EventType\nname: A\naggregate: x\nversion: 1\nschema: {type: object}\n"
	cases := []struct{ name, doc, want string }{
		{"unknown field", base + "sheme: {}\n", `unknown field "sheme"`},
		{"wrong kind", strings.Replace(base, "EventType", "Projection", 1), `kind "Projection"`},
		{"name with a dot", strings.Replace(base, "name: A", "name: A.B", 1), `name "A.B"`},
		{"name with a space", strings.Replace(base, "name: A", "name: A B", 1), `name "A B"`},
		{"missing aggregate", strings.Replace(base, "aggregate: x\n", "", 1), `aggregate ""`},
		{"version 0", strings.Replace(base, "version: 1", "version: 0", 1), "version must be >= 1"},
		{"no schema", strings.Replace(base, "schema: {type: object}\n", "", 1), "schema is required"},
		{"schema does not compile", strings.Replace(base, "{type: object}", "{type: 12}", 1), "schema does not compile"},
		{"not YAML", "kind: [", "decode contract"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schemas.DecodeContract([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := schemas.DecodeContract([]byte("kind: EventType\nname: a.b\nversion: 0\nschema: {type: object}\n"))
	for _, want := range []string{"name", "aggregate", "version"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want it to name %s", err, want)
		}
	}
}

func TestValidateListsEveryViolation(t *testing.T) {
	v, err := schemas.Compile(mustDecode(t, orderPlaced))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Validate([]byte(`{"customer":"c","total":3,"items":[{"sku":"s"}]}`)); got != nil {
		t.Fatalf("valid data: got violations %+v", got)
	}
	got := v.Validate([]byte(`{"total":-1,"items":[{"sku":1},{}]}`))
	want := []schemas.Violation{
		{Path: "", Message: "missing property 'customer'"},
		{Path: "/items/0/sku", Message: "got number, want string"},
		{Path: "/items/1", Message: "missing property 'sku'"},
		{Path: "/total", Message: "minimum: got -1, want 0"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	bad := v.Validate([]byte(`{"customer":`))
	if len(bad) != 1 || bad[0].Path != "" || !strings.Contains(bad[0].Message, "not JSON") {
		t.Fatalf("got %+v, want one 'not JSON' violation", bad)
	}
}

func TestEqualIgnoresKeyOrder(t *testing.T) {
	a := mustDecode(t, "kind: EventType\nname: A\naggregate: x\nversion: 1\nschema: {type: object, required: [a]}\n")
	b := mustDecode(t, `{"schema":{"required":["a"],"type":"object"},"version":1,"aggregate":"x","name":"A","kind":"EventType"}`)
	if !a.Equal(b) {
		t.Fatal("got not equal, want equal")
	}
	c := mustDecode(t, "kind: EventType\nname: A\naggregate: x\nversion: 1\nschema: {type: object}\n")
	if a.Equal(c) {
		t.Fatal("got equal for different schemas, want not equal")
	}
}

func ExampleDecodeContract() {
	c, err := schemas.DecodeContract([]byte(`
kind: EventType
name: OrderShipped
aggregate: order
version: 1
schema: {type: object, required: [carrier]}
`))
	if err != nil {
		panic(err)
	}
	v, _ := schemas.Compile(c)
	fmt.Println(c.Key(), c.SchemaURI())
	fmt.Println(v.Validate([]byte(`{}`)))
	// Output:
	// order.OrderShipped urn:datamesh:schema:order:OrderShipped:1
	// [{ missing property 'carrier'}]
}
