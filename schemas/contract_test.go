package schemas_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

const orderPlacedYAML = `
apiVersion: datamesh/v1
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
    customer: {type: string, minLength: 1}
    total: {type: number, minimum: 0}
    placed: {const: 2024-01-01}
    items:
      type: array
      items:
        type: object
        required: [sku]
        properties:
          sku: {type: string}
          price: {type: number}
`

const orderPlacedJSON = `{
  "apiVersion": "datamesh/v1", "kind": "EventType", "name": "OrderPlaced", "aggregate": "order",
  "version": 1, "owner": "team-orders", "description": "A customer placed an order.",
  "schema": {"properties": {"items": {"items": {"properties": {"price": {"type": "number"}, "sku": {"type": "string"}},
    "required": ["sku"], "type": "object"}, "type": "array"}, "placed": {"const": "2024-01-01"},
    "total": {"minimum": 0, "type": "number"}, "customer": {"type": "string", "minLength": 1}},
    "required": ["customer", "total"], "type": "object"}
}`

// decode decodes doc and fails the test on error.
func decode(t testing.TB, doc string) *schemas.Contract {
	t.Helper()
	c, err := schemas.DecodeContract([]byte(doc))
	if err != nil {
		t.Fatalf("DecodeContract: got error %v, want none", err)
	}
	return c
}

// eventType builds a contract of x.A at version with the YAML schema.
func eventType(t testing.TB, version int, schema string) *schemas.Contract {
	t.Helper()
	return decode(t, "kind: EventType\nname: A\naggregate: x\nversion: "+strconv.Itoa(version)+"\nschema: "+schema+"\n")
}

func TestDecodeContractYAMLAndJSON(t *testing.T) {
	for name, doc := range map[string]string{"yaml": orderPlacedYAML, "json": orderPlacedJSON} {
		t.Run(name, func(t *testing.T) {
			c := decode(t, doc)
			for _, f := range []struct{ field, got, want string }{
				{"apiVersion", c.APIVersion, "datamesh/v1"},
				{"kind", c.Kind, schemas.KindEventType},
				{"name", c.Name, "OrderPlaced"},
				{"aggregate", c.Aggregate, "order"},
				{"owner", c.Owner, "team-orders"},
				{"description", c.Description, "A customer placed an order."},
				{"key", c.Key(), "order.OrderPlaced"},
				{"schema URI", c.SchemaURI(), "urn:datamesh:schema:order:OrderPlaced:1"},
			} {
				if f.got != f.want {
					t.Errorf("%s: got %q, want %q", f.field, f.got, f.want)
				}
			}
			if c.Version != 1 {
				t.Errorf("version: got %d, want 1", c.Version)
			}
			var schema map[string]any
			if err := json.Unmarshal(c.Schema, &schema); err != nil {
				t.Fatalf("schema is not JSON: %v", err)
			}
			placed := schema["properties"].(map[string]any)["placed"].(map[string]any)["const"]
			if placed != "2024-01-01" {
				t.Errorf("const of placed: got %#v, want the text \"2024-01-01\"", placed)
			}
		})
	}
}

func TestDecodeContractRefusals(t *testing.T) {
	const base = "kind: EventType\nname: A\naggregate: x\nversion: 1\nschema: {type: object}\n"
	edit := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("base has no %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	cases := []struct {
		name, doc string
		want      string // the whole message
	}{
		{"unknown field", base + "sheme: {}\n", `line 6, column 1: unknown field "sheme" in contract (did you mean "schema"?)`},
		{"unknown fields", base + "zz: 1\nowners: [a]\n", `line 6, column 1: unknown field "zz" in contract`},
		{"field name in the wrong case", edit("name: A", "Name: A"), `line 2, column 1: unknown field "Name" in contract (did you mean "name"?)`},
		{"unknown field in JSON", `{"kind":"EventType","name":"A","aggregate":"x","version":1,"schema":{},"tags":[]}`, `line 1, column 72: unknown field "tags" in contract`},
		{"wrong kind", edit("EventType", "Projection"), `contract "x.A": kind must be EventType, got "Projection"`},
		{"missing kind", edit("kind: EventType\n", ""), `contract "x.A": kind is required (want EventType)`},
		{"name with a dot", edit("name: A", "name: A.B"), `contract "x.A.B": name "A.B" must be one NATS subject token (no '.', '*', '>' or whitespace)`},
		{"name with a space", edit("name: A", "name: A B"), `contract "x.A B": name "A B" must be one NATS subject token (no '.', '*', '>' or whitespace)`},
		{"name with a wildcard", edit("name: A", "name: '*'"), `contract "x.*": name "*" must be one NATS subject token (no '.', '*', '>' or whitespace)`},
		{"aggregate with >", edit("aggregate: x", "aggregate: x>"), `contract "x>.A": aggregate "x>" must be one NATS subject token (no '.', '*', '>' or whitespace)`},
		{"missing aggregate", edit("aggregate: x\n", ""), `contract ".A": aggregate is required`},
		{"version 0", edit("version: 1", "version: 0"), `contract "x.A": version must be >= 1, got 0`},
		{"negative version", edit("version: 1", "version: -3"), `contract "x.A": version must be >= 1, got -3`},
		{"version not a number", edit("version: 1", "version: one"), `line 4, column 10: version: want an integer, got "one"`},
		{"missing schema", edit("schema: {type: object}\n", ""), `contract "x.A": schema is required`},
		{"null schema", edit("{type: object}", "null"), `contract "x.A": schema is required`},
		{"several problems", "kind: EventType\nname: a.b\nversion: 0\n",
			`contract ".a.b": name "a.b" must be one NATS subject token (no '.', '*', '>' or whitespace); aggregate is required; version must be >= 1, got 0; schema is required`},
		{"empty document", "# nothing\n", `decode contract: empty document`},
		{"list, not mapping", "- kind: EventType\n", `decode contract: the document is not a mapping of fields`},
		{"two documents", base + "---\n" + base, `line 6: more than one YAML document: give one resource at a time`},
		{"duplicate field", base + "version: 2\n", `line 6: mapping key "version" already defined at line 4`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := schemas.DecodeContract([]byte(tc.doc))
			if err == nil {
				t.Fatalf("got contract %+v, want error %q", c, tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("got error\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
}

func TestDecodeContractSchemaDoesNotCompile(t *testing.T) {
	cases := []struct{ name, schema, want string }{
		{"type not a type", "{type: 12}",
			`at "/type": 'anyOf' failed; at "/type": value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'; at "/type": got number, want array`},
		{"two bad keywords", "{properties: {a: {minimum: x}, b: {required: 1}}}",
			`at "/properties/a/minimum": got string, want number; at "/properties/b/required": got number, want array`},
		{"pattern Go cannot compile", `{type: string, pattern: "(?<=a)b"}`,
			"at \"/pattern\": '(?<=a)b' is not valid regex: error parsing regexp: invalid named capture: `(?<=a)b`"},
		{"not a schema", `"text"`, `at "": got string, want boolean or object`},
		{"unknown draft", `{$schema: "https://example.com/my-draft", type: object}`,
			`failing loading "https://example.com/my-draft": https://example.com/my-draft is outside the contract: a contract's schema must be self-contained`},
		{"$ref to a file", `{$ref: "file:///etc/passwd"}`,
			`failing loading "file:///etc/passwd": file:///etc/passwd is outside the contract: a contract's schema must be self-contained`},
		{"$ref to a URL", `{properties: {a: {$ref: "https://example.com/a.json"}}}`,
			`failing loading "https://example.com/a.json": https://example.com/a.json is outside the contract: a contract's schema must be self-contained`},
		{"$ref nowhere inside", `{$ref: "#/$defs/missing"}`, `json-pointer in "urn:datamesh:contract#/$defs/missing" not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schemas.DecodeContract([]byte("kind: EventType\nname: A\naggregate: x\nversion: 1\nschema: " + tc.schema + "\n"))
			want := `contract "x.A": schema does not compile: ` + tc.want
			if err == nil || err.Error() != want {
				t.Fatalf("got error\n%v\nwant\n%s", err, want)
			}
		})
	}
}

func TestValidateChecksContractBuiltInGo(t *testing.T) {
	c := &schemas.Contract{Kind: schemas.KindEventType, Name: "A", Aggregate: "x", Version: 1, Schema: json.RawMessage(`{"type":"object"}`)}
	if err := c.Validate(); err != nil {
		t.Fatalf("got %v, want a valid contract", err)
	}
	c.Name = "A\tB"
	const want = `contract "x.A\tB": name "A\tB" must be one NATS subject token (no '.', '*', '>' or whitespace)`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	c.Name = "A"
	c.Schema = json.RawMessage(`{"type":`)
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), `contract "x.A": schema is not JSON: `) {
		t.Fatalf("got %v, want schema is not JSON", err)
	}
}

func TestEqual(t *testing.T) {
	yamlDoc := decode(t, orderPlacedYAML)
	jsonDoc := decode(t, orderPlacedJSON)
	if !yamlDoc.Equal(jsonDoc) || !jsonDoc.Equal(yamlDoc) {
		t.Fatalf("YAML and JSON forms with other key order: got not equal, want equal")
	}
	cases := []struct {
		name   string
		change func(c *schemas.Contract)
	}{
		{"schema", func(c *schemas.Contract) { c.Schema = json.RawMessage(`{"type":"object"}`) }},
		{"number in schema", func(c *schemas.Contract) {
			c.Schema = json.RawMessage(strings.Replace(string(c.Schema), `"minimum":0`, `"minimum":1`, 1))
		}},
		{"version", func(c *schemas.Contract) { c.Version = 2 }},
		{"description", func(c *schemas.Contract) { c.Description = "other" }},
		{"owner", func(c *schemas.Contract) { c.Owner = "team-billing" }},
		{"apiVersion", func(c *schemas.Contract) { c.APIVersion = "" }},
		{"name", func(c *schemas.Contract) { c.Name = "OrderShipped" }},
		{"aggregate", func(c *schemas.Contract) { c.Aggregate = "cart" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			other := decode(t, orderPlacedYAML)
			tc.change(other)
			if yamlDoc.Equal(other) {
				t.Fatalf("after changing the %s: got equal, want not equal", tc.name)
			}
		})
	}
	spaced := decode(t, orderPlacedYAML)
	spaced.Schema = json.RawMessage("  " + strings.ReplaceAll(string(spaced.Schema), ",", " ,\n ") + "\n")
	if !yamlDoc.Equal(spaced) {
		t.Fatalf("white space in schema: got not equal, want equal")
	}
	var none *schemas.Contract
	if yamlDoc.Equal(none) || !none.Equal(nil) {
		t.Fatalf("nil contracts: got %v and %v, want false and true", yamlDoc.Equal(none), none.Equal(nil))
	}
}
