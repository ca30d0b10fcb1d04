package console_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/nodetest"
)

// meshFixture is the browser test's world: shop, a node with services and
// the orders example (v1 active, v2 live beside it), which exports orders
// to billing and imports billing's payments, one of which its contract
// refuses (a dead letter).
type meshFixture struct {
	shop, billing *node.Node
	ops           *client.Client // shop's admin service
	lastSeq       uint64
}

const paymentContract = `kind: EventType
name: PaymentReceived
aggregate: payment
version: 1
owner: team-billing
description: Billing received a payment for an order.
schema:
  type: object
  required: [order, amount]
  properties:
    order: {type: string}
    amount: {type: number}
`

func newMeshFixture(t *testing.T) *meshFixture {
	cfg := nodeConfig(t, "shop", "billing")
	cfg.Services = testServices
	f := &meshFixture{shop: startNode(t, cfg), billing: startNode(t, nodeConfig(t, "billing", "shop"))}
	f.ops = serviceClient(t, f.shop, "ops")
	bc := serviceClient(t, f.billing, "")
	applyFile(t, f.ops, "contracts.yaml")
	applyFile(t, f.ops, "projection-orders.yaml")
	mustApply(t, f.ops, paymentContract)
	for i, c := range []string{"ada", "bob", "cy", "dee"} {
		id := fmt.Sprintf("o-%d", i+1)
		appendEvent(t, f.ops, "order", id, "OrderPlaced", fmt.Sprintf(`{"customer":%q,"total":%d,"email":"%s@example.com"}`, c, 10*(i+1), c))
		appendEvent(t, f.ops, "order", id, "ItemAdded", `{"sku":"book-1","price":12.5}`)
	}
	appendEvent(t, f.ops, "order", "o-1", "OrderShipped", `{"carrier":"ups"}`)
	mustApply(t, f.ops, "kind: Export\nname: public-orders\ndescription: Orders placed and shipped, without e-mail.\nto: [billing]\naggregates: [order]\ntypes: [OrderPlaced, OrderShipped]\nredact: [email]\n")
	mustApply(t, bc, fmt.Sprintf("kind: Link\nname: orders-from-shop\npeer: shop\nurl: %s\nexport: public-orders\n", f.shop.LeafURL()))
	for i, amount := range []string{"10", "20", `"twenty"`} {
		appendEvent(t, bc, "payment", fmt.Sprintf("p-%d", i+1), "PaymentReceived", fmt.Sprintf(`{"order":"o-%d","amount":%s}`, i+1, amount))
	}
	mustApply(t, bc, "kind: Export\nname: payments\ndescription: Payments received.\nto: [shop]\naggregates: [payment]\n")
	mustApply(t, f.ops, fmt.Sprintf("kind: Link\nname: payments-from-billing\npeer: billing\nurl: %s\nexport: payments\n", f.billing.LeafURL()))
	applyFile(t, f.ops, "changes/projection-orders-v2.yaml")
	nodetest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error { return f.settled(bc) })
	return f
}

// settled: both links imported everything (shop: 2 payments and 1 dead
// letter), billing read the whole export, and every projection version is
// live at the log's head.
func (f *meshFixture) settled(bc *client.Client) error {
	m, err := f.ops.Mesh()
	if err != nil {
		return err
	}
	if len(m.Links) != 1 || m.Links[0].Imported != 2 || m.Links[0].DeadLetters != 1 || !m.Links[0].Connected {
		return fmt.Errorf("shop's link: %+v", m.Links)
	}
	if len(m.Exports) != 1 || m.Exports[0].ReadSeq != m.Exports[0].StreamSeq || m.Exports[0].StreamSeq != 5 {
		return fmt.Errorf("shop's export: %+v", m.Exports)
	}
	bm, err := bc.Mesh()
	if err != nil {
		return err
	}
	if len(bm.Links) != 1 || bm.Links[0].Imported != 5 {
		return fmt.Errorf("billing's link: %+v", bm.Links)
	}
	ps, err := f.ops.Projections()
	if err != nil {
		return err
	}
	for _, p := range ps.Projections {
		if p.State != "live" || p.LagEvents != 0 || p.Head != m.Exports[0].Head {
			return fmt.Errorf("projection: %+v", p)
		}
		f.lastSeq = p.Head
	}
	if len(ps.Projections) != 2 {
		return fmt.Errorf("projections: %+v", ps.Projections)
	}
	return nil
}

func mustApply(t testing.TB, c *client.Client, yaml string) {
	t.Helper()
	if _, err := c.Apply([]byte(yaml), false); err != nil {
		t.Fatalf("apply: %v\n%s", err, yaml)
	}
}
