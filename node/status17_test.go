package node_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// Status does not mislead: a failed projection's progress counts its own
// source's events, not the whole log's, and a live one stays at 100% while
// other aggregates grow; a query bound of the wrong type for its index is
// a bad_request, not an empty answer.
func TestStatusProgressAndBoundTypes(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	if _, err := c.Apply([]byte(`kind: Projection
name: strict
version: 1
source: {aggregates: [order], types: [OrderPlaced]}
key: event.id
handlers:
  OrderPlaced: "data.total > 100 ? merge(doc, {big: data.customer.name}) : {total: data.total}"
on_error: stop
`), false); err != nil {
		t.Fatal(err)
	}
	invoices := func(n int) {
		for i := range n {
			if _, err := c.Append("invoice", fmt.Sprintf("i-%d", i), "InvoiceSent", []byte(`{}`), client.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	placeOrder(t, c, "o-1", "alice", 5)
	invoices(10)
	placeOrder(t, c, "o-2", "bob", 500) // strict fails here: customer is a string
	invoices(10)
	last := placeOrder(t, c, "o-3", "carol", 7)
	query(t, c, "orders", projection.Query{Get: ptr("o-3"), MinSeq: last})
	invoices(10)

	var st map[string]projection.Status
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		r, err := c.Projections()
		if err != nil {
			return err
		}
		st = map[string]projection.Status{}
		for _, s := range r.Projections {
			st[s.Name] = s
		}
		if st["strict"].State != projection.StateFailed || st["orders"].State != projection.StateLive {
			return fmt.Errorf("got %+v, want strict failed and orders live", st)
		}
		return nil
	})
	if s := st["strict"]; math.Abs(s.Progress-1.0/3) > 1e-9 || s.LagEvents != 2 {
		t.Fatalf("strict, failed at its 2nd of 3 events in a log of %d: got progress %.3f, lag %d; want 0.333, 2",
			s.Head, s.Progress, s.LagEvents)
	}
	if s := st["orders"]; s.Progress != 1 || s.LagEvents != 0 {
		t.Fatalf("orders, live while invoices grow: got progress %.3f, lag %d; want 1, 0", s.Progress, s.LagEvents)
	}

	_, err := c.Query("orders", projection.Query{List: &projection.Filter{Index: "by_total", Gte: []byte(`"abc"`)}})
	e := wantAPIError(t, err, protocol.CodeBadRequest)
	if want := `index by_total has type number: gte "abc" is a string, not a number`; !strings.Contains(e.Message, want) {
		t.Fatalf("got %q, want it to say %q", e.Message, want)
	}
}
