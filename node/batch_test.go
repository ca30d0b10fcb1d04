package node_test

import (
	"fmt"
	"testing"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func orderEvents(n int, prefix string) []map[string]any {
	evs := make([]map[string]any, n)
	for i := range evs {
		evs[i] = map[string]any{"type": "ItemAdded", "id": fmt.Sprintf("%s-%d", prefix, i), "data": map[string]any{"sku": fmt.Sprintf("s-%d", i), "price": i + 1}}
	}
	return evs
}

func TestBatchIsStoredWhole(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	appendBatchAmongOthers(t, c)

	t.Run("one invalid event stores nothing", func(t *testing.T) {
		bad := orderEvents(3, "b")
		bad[1]["data"] = map[string]any{"sku": "s", "price": "free"}
		_, err := c.AppendBatch("order", "o-1", bad, nil)
		e := wantAPIError(t, err, protocol.CodeSchemaViolation)
		if e.Index == nil || *e.Index != 1 || len(e.Violations) == 0 || e.Violations[0].Path != "/1/data/price" {
			t.Fatalf("got %+v, want index 1 and a violation at /1/data/price", e)
		}
		if got := len(readAll(t, c, "order", "o-1")); got != 4 {
			t.Fatalf("got %d events, want still 4", got)
		}
	})
	t.Run("a stale expected version stores nothing", func(t *testing.T) {
		_, err := c.AppendBatch("order", "o-1", orderEvents(2, "c"), client.Expect(1))
		e := wantAPIError(t, err, protocol.CodeVersionConflict)
		if e.CurrentVersion == nil || *e.CurrentVersion != 5 {
			t.Fatalf("got %+v, want current_version 5", e)
		}
		if got := len(readAll(t, c, "order", "o-1")); got != 4 {
			t.Fatalf("got %d events, want still 4", got)
		}
	})
	t.Run("a retried batch is a duplicate", func(t *testing.T) {
		again, err := c.AppendBatch("order", "o-1", orderEvents(3, "a"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.FirstSeq != 3 || again.LastSeq != 5 {
			t.Fatalf("got %+v, want duplicate of 3..5", again)
		}
		// The retry of the original request, expected version included.
		again, err = c.AppendBatch("order", "o-1", orderEvents(3, "a"), client.Expect(1))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.FirstSeq != 3 || again.Count != 3 {
			t.Fatalf("got %+v, want duplicate of 3..5", again)
		}
	})
	t.Run("a batch reusing one stored id is refused", func(t *testing.T) {
		mixed := orderEvents(2, "d")
		mixed[1]["id"] = "a-0"
		_, err := c.AppendBatch("order", "o-1", mixed, nil)
		wantAPIError(t, err, protocol.CodeDuplicate)
		if got := len(readAll(t, c, "order", "o-1")); got != 4 {
			t.Fatalf("got %d events, want still 4", got)
		}
	})
	t.Run("an id twice in one batch is refused", func(t *testing.T) {
		twice := orderEvents(2, "e")
		twice[1]["id"] = "e-0"
		_, err := c.AppendBatch("order", "o-1", twice, nil)
		e := wantAPIError(t, err, protocol.CodeBadRequest)
		if e.Index == nil || *e.Index != 1 {
			t.Fatalf("got %+v, want index 1", e)
		}
	})
	t.Run("over the batch limit is too large", func(t *testing.T) {
		_, err := c.AppendBatch("order", "o-1", orderEvents(node.DefaultMaxBatch+1, "f"), nil)
		wantAPIError(t, err, protocol.CodeTooLarge)
	})
	t.Run("a missing type names the event", func(t *testing.T) {
		_, err := c.AppendBatch("order", "o-1", []map[string]any{{"type": "ItemAdded", "data": map[string]any{"sku": "x", "price": 1}}, {"data": map[string]any{}}}, nil)
		e := wantAPIError(t, err, protocol.CodeBadRequest)
		if e.Index == nil || *e.Index != 1 {
			t.Fatalf("got %+v, want index 1", e)
		}
	})
	if got := len(readAll(t, c, "order", "o-1")); got != 4 {
		t.Fatalf("got %d events, want 4 after the refused batches", got)
	}
}

// appendBatchAmongOthers appends o-1's first event, then one of o-2, then a
// batch of three ItemAdded (ids a-0..a-2) to o-1 at expected version 1, and
// checks the batch took seqs 3..5, contiguous despite o-2's event between.
func appendBatchAmongOthers(t testing.TB, c *client.Client) {
	t.Helper()
	if _, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{"customer":"c-1","total":0}`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another aggregate's events interleave in the log; the batch stays contiguous.
	if _, err := c.Append("order", "o-2", "OrderPlaced", []byte(`{"customer":"c-2","total":0}`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := c.AppendBatch("order", "o-1", orderEvents(3, "a"), client.Expect(1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 3 || r.FirstSeq != 3 || r.LastSeq != 5 {
		t.Fatalf("got %+v, want seqs 3..5 count 3", r)
	}
	evs := readAll(t, c, "order", "o-1")
	if len(evs) != 4 {
		t.Fatalf("got %d events, want 4", len(evs))
	}
	for i, e := range evs[1:] {
		if e.Seq != uint64(3+i) || e.ID != fmt.Sprintf("a-%d", i) || e.Type != "ItemAdded" {
			t.Fatalf("event %d: got %+v", i, e)
		}
	}
}

func TestBatchOfNewAggregateWithExpectedZero(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	r, err := c.AppendBatch("order", "o-9", orderEvents(1000, "g"), client.Expect(0))
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 1000 || r.LastSeq-r.FirstSeq != 999 {
		t.Fatalf("got %+v, want 1000 contiguous seqs", r)
	}
	_, err = c.AppendBatch("order", "o-9", orderEvents(2, "h"), client.Expect(0))
	wantAPIError(t, err, protocol.CodeVersionConflict)
}
