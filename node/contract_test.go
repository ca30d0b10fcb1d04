package node_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

const examples = "../deploy/examples/orders"

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examples, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyOrderContracts applies the example domain's contracts.
func applyOrderContracts(t testing.TB, c *client.Client) {
	t.Helper()
	r, err := c.Apply(readExample(t, "contracts.yaml"), false)
	if err != nil {
		t.Fatalf("apply contracts: %v", err)
	}
	if len(r.Results) != 4 {
		t.Fatalf("got %d results, want 4", len(r.Results))
	}
}

func TestContractsAreEnforced(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)

	r, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{"customer":"c-1","total":10}`), client.AppendOptions{})
	if err != nil {
		t.Fatalf("valid event: %v", err)
	}
	_, err = c.Append("order", "o-1", "OrderPlaced", []byte(`{"total":-1,"email":3}`), client.AppendOptions{})
	e := wantAPIError(t, err, protocol.CodeSchemaViolation)
	if e.Status != 422 {
		t.Fatalf("got status %d, want 422", e.Status)
	}
	paths := map[string]bool{}
	for _, v := range e.Violations {
		paths[v.Path] = true
		if v.Message == "" {
			t.Fatalf("violation at %q has no message", v.Path)
		}
	}
	for _, want := range []string{"", "/total", "/email"} { // "" is the missing customer
		if !paths[want] {
			t.Fatalf("got violations %+v, want one at %q", e.Violations, want)
		}
	}
	// A type without a contract is accepted as any JSON.
	if _, err := c.Append("order", "o-1", "NoteAdded", []byte(`[1,2]`), client.AppendOptions{}); err != nil {
		t.Fatalf("uncontracted type: %v", err)
	}
	evs := readAll(t, c, "order", "o-1")
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2 (the invalid one stores nothing)", len(evs))
	}
	if evs[0].Seq != r.Seq || evs[0].DataSchema != "urn:datamesh:schema:order:OrderPlaced:1" {
		t.Fatalf("got dataschema %q, want the contract's URI", evs[0].DataSchema)
	}
	if evs[1].DataSchema != "" {
		t.Fatalf("got dataschema %q for an uncontracted type, want none", evs[1].DataSchema)
	}
}

func TestContractEvolution(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)

	// Re-applying the same contracts changes nothing.
	r, err := c.Apply(readExample(t, "contracts.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Results {
		if res.Status != "unchanged" {
			t.Fatalf("got %+v, want unchanged", res)
		}
	}

	_, err = c.Apply(readExample(t, "changes/orderplaced-v2-breaking.yaml"), false)
	e := wantAPIError(t, err, protocol.CodeIncompatible)
	if len(e.Reasons) != 1 || e.Reasons[0] != `field "/email" became required` {
		t.Fatalf("got reasons %q, want the new required field", e.Reasons)
	}
	cat, err := c.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if v := findType(t, cat, "OrderPlaced").Version; v != 1 {
		t.Fatalf("got version %d after a refused apply, want 1", v)
	}

	r, err = c.Apply(readExample(t, "changes/orderplaced-v2.yaml"), false)
	if err != nil {
		t.Fatalf("compatible v2: %v", err)
	}
	if r.Results[0].Status != "created" || r.Results[0].Version != 2 {
		t.Fatalf("got %+v, want v2 created", r.Results[0])
	}
	// Same version, other content: refused.
	_, err = c.Apply(readExample(t, "changes/orderplaced-v2-breaking.yaml"), false)
	wantAPIError(t, err, protocol.CodeConflict)

	// Older than the latest: refused.
	old := []byte("kind: EventType\nname: ItemAdded\naggregate: order\nversion: 1\nschema: {type: object}\n")
	_, err = c.Apply(old, false)
	wantAPIError(t, err, protocol.CodeConflict)

	// A breaking v3 goes through with force, and is then enforced.
	v3 := []byte("kind: EventType\nname: OrderPlaced\naggregate: order\nversion: 3\nschema: {type: object, required: [customer, total, email]}\n")
	r, err = c.Apply(v3, true)
	if err != nil {
		t.Fatalf("forced v3: %v", err)
	}
	if r.Results[0].Status != "forced" {
		t.Fatalf("got %+v, want forced", r.Results[0])
	}
	_, err = c.Append("order", "o-1", "OrderPlaced", []byte(`{"customer":"c","total":1}`), client.AppendOptions{})
	wantAPIError(t, err, protocol.CodeSchemaViolation)
}

func TestApplyIsAllOrNothing(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	body := []byte("kind: EventType\nname: A\naggregate: x\nversion: 1\nschema: {type: object}\n---\nkind: EventType\nname: B\naggregate: x\nversion: 0\nschema: {type: object}\n")
	_, err := c.Apply(body, false)
	wantAPIError(t, err, protocol.CodeBadRequest)
	cat, err := c.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.EventTypes) != 0 {
		t.Fatalf("got %d event types after a refused apply, want 0", len(cat.EventTypes))
	}
}

func TestRequiredContracts(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.RequireContracts = true
	n := startNode(t, cfg)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	_, err := c.Append("order", "o-1", "NoteAdded", []byte(`{}`), client.AppendOptions{})
	wantAPIError(t, err, protocol.CodeNoContract)
	if _, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{"customer":"c","total":1}`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoveryListsContracts(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	cat, err := c.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if cat.Node != "test" || cat.Version != node.Version || len(cat.EventTypes) != 4 {
		t.Fatalf("got catalog %+v", cat)
	}
	e := findType(t, cat, "OrderPlaced")
	if e.Aggregate != "order" || e.Owner != "team-orders" || e.Subject != "evt.order.*.OrderPlaced" || len(e.Schema) == 0 {
		t.Fatalf("got entry %+v", e)
	}
}

func findType(t testing.TB, cat *protocol.Catalog, typ string) protocol.CatalogEntry {
	t.Helper()
	for _, e := range cat.EventTypes {
		if e.Type == typ {
			return e
		}
	}
	t.Fatalf("type %s not in catalog", typ)
	return protocol.CatalogEntry{}
}
