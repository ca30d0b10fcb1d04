package schemas_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

// compile compiles c and fails the test on error.
func compile(t testing.TB, c *schemas.Contract) *schemas.Validator {
	t.Helper()
	v, err := schemas.Compile(c)
	if err != nil {
		t.Fatalf("Compile: got error %v, want none", err)
	}
	return v
}

func TestValidatorValidate(t *testing.T) {
	v := compile(t, decode(t, orderPlacedYAML))
	cases := []struct {
		name, data string
		want       []schemas.Violation // nil: valid
	}{
		{"valid", `{"customer":"c","total":3,"items":[{"sku":"s","price":1.5}]}`, nil},
		{"valid, extra field", `{"customer":"c","total":0,"note":"x"}`, nil},
		{"every violation with its path", `{"total":-1,"placed":"2023-01-01","items":[{"sku":1,"price":"9"},{}]}`, []schemas.Violation{
			{Path: "", Message: "missing property 'customer'"},
			{Path: "/items/0/price", Message: "got string, want number"},
			{Path: "/items/0/sku", Message: "got number, want string"},
			{Path: "/items/1", Message: "missing property 'sku'"},
			{Path: "/placed", Message: "value must be '2024-01-01'"},
			{Path: "/total", Message: "minimum: got -1, want 0"},
		}},
		{"several at the root", `{"items":[]}`, []schemas.Violation{
			{Path: "", Message: "missing properties 'customer', 'total'"},
		}},
		{"not an object", `[1]`, []schemas.Violation{
			{Path: "", Message: "got array, want object"},
		}},
		{"empty string", `{"customer":"","total":1}`, []schemas.Violation{
			{Path: "/customer", Message: "minLength: got 0, want 1"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := v.Validate([]byte(tc.data))
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestValidatorValidateNotJSON(t *testing.T) {
	v := compile(t, decode(t, orderPlacedYAML))
	for _, data := range []string{`{"customer":`, ``, `{"customer":"c","total":1} {}`, `not json`} {
		got := v.Validate([]byte(data))
		if len(got) != 1 || got[0].Path != "" || !strings.HasPrefix(got[0].Message, "data is not JSON: ") {
			t.Errorf("data %q: got %q, want one violation at \"\" saying data is not JSON", data, got)
		}
	}
}

func TestValidatorKeepsAnyOfWithItsBranches(t *testing.T) {
	v := compile(t, eventType(t, 1, `{properties: {id: {anyOf: [{type: string}, {type: integer}]}, ref: {$ref: "#/$defs/ref"}}, $defs: {ref: {type: object, required: [id]}}}`))
	got := v.Validate([]byte(`{"id":1.5,"ref":{}}`))
	want := []schemas.Violation{
		{Path: "/id", Message: "'anyOf' failed"},
		{Path: "/id", Message: "got number, want string"},
		{Path: "/id", Message: "got number, want integer"},
		{Path: "/ref", Message: "missing property 'id'"},
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestValidatorAssertsFormat(t *testing.T) {
	v := compile(t, eventType(t, 1, `{properties: {email: {type: string, format: email}, at: {format: date-time}}}`))
	if got := v.Validate([]byte(`{"email":"a@example.com","at":"2024-01-01T10:00:00Z"}`)); got != nil {
		t.Fatalf("valid formats: got %q, want none", got)
	}
	got := v.Validate([]byte(`{"email":"nobody","at":"yesterday"}`))
	if len(got) != 2 || got[0].Path != "/at" || got[1].Path != "/email" {
		t.Fatalf("got %q, want violations at /at and /email", got)
	}
	if !strings.Contains(got[1].Message, "not valid email") {
		t.Fatalf("got message %q, want it to say not valid email", got[1].Message)
	}
}

func TestValidatorDraftFromSchema(t *testing.T) {
	// Under draft-07, "items" as an array is a tuple; 2020-12 would refuse it.
	v := compile(t, eventType(t, 1, `{$schema: "http://json-schema.org/draft-07/schema#", type: array, items: [{type: string}]}`))
	got := v.Validate([]byte(`[1]`))
	want := []schemas.Violation{{Path: "/0", Message: "got number, want string"}}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestCompile(t *testing.T) {
	c := decode(t, orderPlacedYAML)
	v := compile(t, c)
	if got := v.Contract(); !got.Equal(c) {
		t.Fatalf("Contract(): got %+v, want %+v", got, c)
	}
	c.Version = 7
	c.Schema = json.RawMessage(`{"type":"string"}`)
	if got := v.Contract().Version; got != 1 {
		t.Fatalf("after changing the caller's contract: got version %d, want 1", got)
	}
	if got := v.Validate([]byte(`{"customer":"c","total":1}`)); got != nil {
		t.Fatalf("after changing the caller's contract: got %q, want the compiled schema to hold", got)
	}
	bad := &schemas.Contract{Kind: schemas.KindEventType, Name: "A", Aggregate: "x", Version: 0, Schema: json.RawMessage(`{}`)}
	const want = `contract "x.A": version must be >= 1, got 0`
	if _, err := schemas.Compile(bad); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	bad.Version, bad.Schema = 1, json.RawMessage(`{"minimum":"zero"}`)
	if _, err := schemas.Compile(bad); err == nil || !strings.HasPrefix(err.Error(), `contract "x.A": schema does not compile: `) {
		t.Fatalf("got %v, want schema does not compile", err)
	}
}

func TestValidatorConcurrentUse(t *testing.T) {
	v := compile(t, decode(t, orderPlacedYAML))
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := range 16 {
		wg.Go(func() {
			data := fmt.Sprintf(`{"customer":"c%d","total":%d}`, i, i-8)
			got := v.Validate([]byte(data))
			if (i < 8) != (len(got) == 1) {
				errs <- fmt.Sprintf("data %s: got %q", data, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
