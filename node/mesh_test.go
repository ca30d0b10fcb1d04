package node_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
)

const testSecret = "mesh-test-secret"

// meshConfig is a test node named name that shares events with peers.
func meshConfig(t testing.TB, name string, peers ...string) node.Config {
	cfg := testConfig(t.TempDir())
	cfg.Name = name
	cfg.Peers = map[string]node.Peer{}
	for _, p := range peers {
		cfg.Peers[p] = node.Peer{Secret: testSecret}
	}
	return cfg
}

func apply(t testing.TB, c *client.Client, yaml string) *node.ApplyReply {
	t.Helper()
	r, err := c.Apply([]byte(yaml), false)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, yaml)
	}
	return r
}

func exportYAML(name, to, aggregates, types, redact string) string {
	return fmt.Sprintf("kind: Export\nname: %s\nto: [%s]\naggregates: [%s]\ntypes: [%s]\nredact: [%s]\n", name, to, aggregates, types, redact)
}

func linkYAML(name, peer, url, export, transform string) string {
	s := fmt.Sprintf("kind: Link\nname: %s\npeer: %s\nurl: %s\nexport: %s\n", name, peer, url, export)
	if transform != "" {
		s += "transform:\n" + transform
	}
	return s
}

// waitEvents polls until aggregate has want events in c's node (all ids
// together when id is "").
func waitCategory(t testing.TB, c *client.Client, aggregate string, want int) []node.Event {
	t.Helper()
	var evs []node.Event
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		var err error
		evs, err = readCategory(c, aggregate)
		if err != nil {
			return err
		}
		if len(evs) < want {
			return fmt.Errorf("%d of %d %s events", len(evs), want, aggregate)
		}
		return nil
	})
	return evs
}

func readCategory(c *client.Client, aggregate string) ([]node.Event, error) {
	var all []node.Event
	from := uint64(0)
	for {
		r, err := c.Read(aggregate, "", node.ReadRequest{FromSeq: from, Limit: 1000})
		if err != nil {
			return nil, err
		}
		all = append(all, r.Events...)
		if r.NextSeq == 0 {
			return all, nil
		}
		from = r.NextSeq
	}
}

// checkExactlyOnce asserts that evs are the imports of origin seqs with
// no repeat, in the owner's order.
func checkExactlyOnce(t testing.TB, evs []node.Event, want int) {
	t.Helper()
	if len(evs) != want {
		t.Fatalf("got %d imported events, want %d", len(evs), want)
	}
	var last uint64
	seen := map[uint64]bool{}
	for _, ev := range evs {
		if ev.Origin == nil {
			t.Fatalf("event %d has no origin", ev.Seq)
		}
		if seen[ev.Origin.Seq] {
			t.Fatalf("origin seq %d imported twice", ev.Origin.Seq)
		}
		seen[ev.Origin.Seq] = true
		if ev.Origin.Seq <= last {
			t.Fatalf("origin seq %d after %d: out of the owner's order", ev.Origin.Seq, last)
		}
		last = ev.Origin.Seq
	}
}

func placeOrders(t testing.TB, c *client.Client, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		data := fmt.Sprintf(`{"customer":{"name":"c%d","email":"c%d@example.com"},"total":%d,"card_number":"4111"}`, i, i, 10+i)
		if _, err := c.Append("order", fmt.Sprintf("o-%d", i), "OrderPlaced", []byte(data), client.AppendOptions{}); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func TestMeshLinkTransformsAndRedacts(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing"))
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)

	apply(t, oc, exportYAML("public-orders", "billing", "order", "OrderPlaced, OrderShipped", "card_number, customer.email"))
	r := apply(t, bc, linkYAML("orders-to-billing", "orders", orders.LeafURL(), "public-orders", `  filter: "data.total > 10"
  type: "event.type == 'OrderPlaced' ? 'InvoiceRequested' : event.type"
  aggregate: "'invoice'"
  id: "event.id"
  data: "{order: event.id, amount: data.total, customer: data.customer}"
`))
	if r.Results[0].Kind != "Link" || r.Results[0].Status != "created" {
		t.Fatalf("apply link: %+v", r.Results)
	}
	placeOrders(t, oc, 0, 20) // o-0 has total 10: filtered out
	if _, err := oc.Append("order", "o-5", "ItemAdded", []byte(`{"item":{"price":1}}`), client.AppendOptions{}); err != nil {
		t.Fatal(err) // not exported: ItemAdded is not in the export's types
	}
	evs := waitCategory(t, bc, "invoice", 19)
	checkExactlyOnce(t, evs, 19)
	for _, ev := range evs {
		if ev.Type != "InvoiceRequested" || ev.Origin.Node != "orders" || ev.Origin.Link != "orders-to-billing" {
			t.Fatalf("imported event: %+v", ev)
		}
		var d map[string]any
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		cust := d["customer"].(map[string]any)
		if _, leaked := cust["email"]; leaked {
			t.Fatalf("customer.email was not redacted: %s", ev.Data)
		}
		if _, ok := d["card_number"]; ok {
			t.Fatalf("card_number crossed: %s", ev.Data)
		}
		if d["order"] != ev.AggregateID || cust["name"] == nil {
			t.Fatalf("transformed data: %s", ev.Data)
		}
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		st, err := bc.Mesh()
		if err != nil {
			return err
		}
		if len(st.Links) != 1 {
			return fmt.Errorf("links: %+v", st.Links)
		}
		l := st.Links[0]
		if !l.Connected || l.State != node.LinkImporting || l.LagEvents != 0 || l.Imported != 19 || l.Filtered != 1 {
			return fmt.Errorf("link status: %+v", l)
		}
		return nil
	})
	st, err := oc.Mesh()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Exports) != 1 || st.Exports[0].Peer != "billing" || !st.Exports[0].Connected || st.Exports[0].StreamSeq != 20 {
		t.Fatalf("export status: %+v", st.Exports)
	}
	// Discovery lists exports and links; the mesh catalog shows what the
	// owner's exports grant, nothing else.
	cat, err := bc.CatalogMesh()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Links) != 1 || len(cat.Mesh) != 1 || cat.Mesh[0].Node != "orders" || cat.Mesh[0].Error != "" ||
		len(cat.Mesh[0].Exports) != 1 || cat.Mesh[0].Exports[0].Name != "public-orders" {
		t.Fatalf("mesh catalog: %+v", cat.Mesh)
	}
	if !strings.Contains(cat.Mesh[0].Exports[0].Stream, "public-orders") {
		t.Fatalf("export stream: %+v", cat.Mesh[0].Exports[0])
	}
}
