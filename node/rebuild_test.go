package node_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// dumpProjection lists every document of a projection version, in key order.
func dumpProjection(t testing.TB, c *client.Client, name string) string {
	t.Helper()
	var b strings.Builder
	after := ""
	for {
		r := query(t, c, name, projection.Query{List: &projection.Filter{Limit: projection.MaxListLimit, After: after}})
		for _, d := range r.Docs {
			fmt.Fprintf(&b, "%s=%s\n", d.Key, d.Doc)
		}
		if *r.Next == "" {
			return b.String()
		}
		after = *r.Next
	}
}

func waitLive(t testing.TB, c *client.Client, name string, applied uint64) projection.Status {
	t.Helper()
	var got projection.Status
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		st, err := c.Projections()
		if err != nil {
			return err
		}
		for _, s := range st.Projections {
			if s.Name == name && s.Active {
				got = s
				if s.State == projection.StateLive && s.Applied >= applied {
					return nil
				}
			}
		}
		return fmt.Errorf("%s: %+v", name, got)
	})
	return got
}

// appendOrders writes orders with items, some shipped, some cancelled, in
// atomic batches; it returns the last seq.
func appendOrders(t testing.TB, c *client.Client, orders int) uint64 {
	t.Helper()
	var last uint64
	for i := range orders {
		evs := []map[string]any{
			{"type": "OrderPlaced", "data": map[string]any{"customer": fmt.Sprintf("c-%d", i%13), "total": 0}},
			{"type": "ItemAdded", "data": map[string]any{"sku": "a", "price": i % 7}},
			{"type": "ItemAdded", "data": map[string]any{"sku": "b", "price": 1.5}},
		}
		switch i % 4 {
		case 1:
			evs = append(evs, map[string]any{"type": "OrderShipped", "data": map[string]any{}})
		case 2:
			evs = append(evs, map[string]any{"type": "OrderCancelled", "data": map[string]any{}})
		}
		r, err := c.AppendBatch("order", fmt.Sprintf("o-%05d", i), evs, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = r.LastSeq
	}
	return last
}

// TestProjectionStoppedMidRebuildMatchesAFreshRebuild stops the node while
// the projection is replaying, restarts it, and compares the documents with
// those of a rebuild from an empty file.
func TestProjectionStoppedMidRebuildMatchesAFreshRebuild(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	n := startNode(t, cfg)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	last := appendOrders(t, c, 1500)
	// The projection comes after the events: it has a log to replay.
	if _, err := c.Apply(readExample(t, "projection-orders.yaml"), false); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 30*time.Second, time.Millisecond, func() error {
		st, err := c.Projections()
		if err != nil {
			return err
		}
		if a := st.Projections[0].Applied; a == 0 {
			return fmt.Errorf("nothing applied yet")
		}
		return nil
	})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, cfg)
	c2 := newClient(t, n2)
	st := waitLive(t, c2, "orders", last)
	resumed := dumpProjection(t, c2, "orders")
	cnt := query(t, c2, "orders", projection.Query{Count: &projection.Filter{}})
	if st.Documents != 1125 || *cnt.Count != 1125 { // 1500 orders, a quarter cancelled
		t.Fatalf("got %d documents in status, %d counted, want 1125", st.Documents, *cnt.Count)
	}
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filepath.Join(dir, "projections", "orders", "v1.db")); err != nil {
		t.Fatal(err)
	}
	n3 := startNode(t, cfg)
	c3 := newClient(t, n3)
	waitLive(t, c3, "orders", last)
	if rebuilt := dumpProjection(t, c3, "orders"); rebuilt != resumed {
		rl, bl := strings.Split(resumed, "\n"), strings.Split(rebuilt, "\n")
		for i := range min(len(rl), len(bl)) {
			if rl[i] != bl[i] {
				t.Fatalf("resumed and rebuilt projections differ:\nresumed %s\nrebuilt %s", rl[i], bl[i])
			}
		}
		t.Fatalf("resumed and rebuilt projections differ (%d vs %d bytes)", len(resumed), len(rebuilt))
	}
	// Spot-check one document's fold.
	got := query(t, c3, "orders", projection.Query{Get: ptr("o-00005")})
	var doc map[string]any
	if err := json.Unmarshal(got.Doc, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["status"] != "shipped" || doc["total"] != 6.5 || len(doc["items"].([]any)) != 2 {
		t.Fatalf("got o-00005 = %s", got.Doc)
	}
}

func TestNativeProjection(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n, err := node.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	spec := &projection.Spec{Kind: projection.KindProjection, Name: "spend", Version: 1,
		Source:  projection.Source{Aggregates: []string{"order"}, Types: []string{"OrderPlaced"}},
		Indexes: map[string]projection.IndexSpec{"by_total": {Field: "total", Type: "number"}}}
	err = n.RegisterProjection(spec, projection.Funcs{
		KeyFunc: func(ev *projection.Event, data any) (string, error) {
			return data.(map[string]any)["customer"].(string), nil
		},
		FoldFunc: func(ev *projection.Event, data any, doc map[string]any) (map[string]any, bool, error) {
			total := data.(map[string]any)["total"].(float64)
			if doc != nil {
				total += doc["total"].(float64)
			}
			return map[string]any{"total": total, "orders": ev.Seq}, false, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	c := newClient(t, n)
	placeOrder(t, c, "o-1", "alice", 10)
	placeOrder(t, c, "o-2", "bob", 1)
	last := placeOrder(t, c, "o-3", "alice", 5)
	got := query(t, c, "spend", projection.Query{Get: ptr("alice"), MinSeq: last})
	if docMap(t, got.Doc)["total"] != 15.0 {
		t.Fatalf("got %s, want total 15", got.Doc)
	}
	top := query(t, c, "spend", projection.Query{List: &projection.Filter{Index: "by_total", Desc: true, Limit: 1}})
	if len(top.Docs) != 1 || top.Docs[0].Key != "alice" {
		t.Fatalf("got %+v, want alice first", top.Docs)
	}
	// It cannot be redefined by a resource.
	_, err = c.Apply([]byte("kind: Projection\nname: spend\nversion: 1\nsource: {aggregates: [order], types: [OrderPlaced]}\nkey: event.id\nhandlers: {OrderPlaced: \"{}\"}\n"), false)
	wantAPIError(t, err, protocol.CodeConflict)
}
