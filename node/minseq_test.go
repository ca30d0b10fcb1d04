package node_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// A min_seq beyond the log's head waits for the log to get there: it is
// answered once the head reaches it (with no event of the source in
// between) or the projection applies it, else not_up_to_date when the
// timeout ends, with the seq the projection has.
func TestMinSeqBeyondTheHeadWaits(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	head := placeOrder(t, c, "o-1", "alice", 10)
	query(t, c, "orders", projection.Query{Get: ptr("o-1"), MinSeq: head})

	resp := request(t, dial(t, n), protocol.SubjectQuery+".orders", nil,
		`{"get":"o-1","min_seq":1099511627776,"timeout_ms":200}`)
	e := wantErrorReply(t, resp, "504", protocol.CodeNotUpToDate)
	if e.Seq == nil || *e.Seq != head {
		t.Fatalf("not_up_to_date carries seq %v, want %d", e.Seq, head)
	}

	// Two seqs ahead, and the log gets there with other aggregates' events.
	got := make(chan error, 1)
	go func() {
		_, err := c.Query("orders", projection.Query{Get: ptr("o-1"), MinSeq: head + 2, TimeoutMS: 20000})
		got <- err
	}()
	for range 2 {
		if _, err := c.Append("customer", "c-1", "CustomerJoined", []byte(`{}`), client.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-got; err != nil {
		t.Fatalf("min_seq reached by other aggregates: %v", err)
	}

	// One seq ahead, reached by an event of the source: the answer has it.
	type answer struct {
		r   *projection.Result
		err error
	}
	ans := make(chan answer, 1)
	go func() {
		r, err := c.Query("orders", projection.Query{Get: ptr("o-1"), MinSeq: head + 3, TimeoutMS: 20000})
		ans <- answer{r, err}
	}()
	seq := appendEvent(t, c, "o-1", "ItemAdded", `{"sku":"b","price":2}`)
	a := <-ans
	if a.err != nil || a.r.Seq != seq || docMap(t, a.r.Doc)["total"] != 12.0 {
		t.Fatalf("got %+v (%v), want o-1 with total 12 at seq %d", a.r, a.err, seq)
	}
}

// cutProjections disconnects every projection worker's connection.
func cutProjections(t *testing.T, n *node.Node) int {
	t.Helper()
	cz, err := n.Server().Connz(&server.ConnzOptions{Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	cut := 0
	for _, ci := range cz.Conns {
		if ci.Name == "datamesh-projection" {
			if err := n.Server().DisconnectClientByID(ci.Cid); err != nil {
				t.Fatal(err)
			}
			cut++
		}
	}
	return cut
}

// A projection whose connection is cut catches up again, and the node
// closes promptly while a worker's connection is down.
func TestProjectionConnectionCut(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	placeOrder(t, c, "o-1", "alice", 10)
	if cutProjections(t, n) == 0 {
		t.Fatal("no projection connection to cut")
	}
	seq := placeOrder(t, c, "o-2", "bob", 5)
	query(t, c, "orders", projection.Query{Get: ptr("o-2"), MinSeq: seq, TimeoutMS: 30000})

	cutProjections(t, n)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- n.Close() }()
	select {
	case err := <-done:
		t.Logf("closed in %v", time.Since(start))
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Node.Close did not return within 10s after the projection's connection was cut")
	}
}
