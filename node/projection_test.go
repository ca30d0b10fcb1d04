package node_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// applyOrders applies the example domain: contracts and the orders projection.
func applyOrders(t testing.TB, c *client.Client) {
	t.Helper()
	applyOrderContracts(t, c)
	if _, err := c.Apply(readExample(t, "projection-orders.yaml"), false); err != nil {
		t.Fatalf("apply projection: %v", err)
	}
}

func placeOrder(t testing.TB, c *client.Client, id, customer string, total float64) uint64 {
	t.Helper()
	r, err := c.Append("order", id, "OrderPlaced", fmt.Appendf(nil, `{"customer":%q,"total":%v}`, customer, total), client.AppendOptions{})
	if err != nil {
		t.Fatalf("place %s: %v", id, err)
	}
	return r.Seq
}

func appendEvent(t testing.TB, c *client.Client, id, typ, data string) uint64 {
	t.Helper()
	r, err := c.Append("order", id, typ, []byte(data), client.AppendOptions{})
	if err != nil {
		t.Fatalf("append %s %s: %v", id, typ, err)
	}
	return r.Seq
}

func query(t testing.TB, c *client.Client, name string, q projection.Query) *projection.Result {
	t.Helper()
	r, err := c.Query(name, q)
	if err != nil {
		t.Fatalf("query %s %+v: %v", name, q, err)
	}
	return r
}

func docMap(t testing.TB, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("document %s: %v", raw, err)
	}
	return m
}

func keys(docs []projection.Doc) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.Key
	}
	return out
}

func TestProjectionFoldsAndAnswersQueries(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	placeOrder(t, c, "o-1", "alice", 10)
	placeOrder(t, c, "o-2", "bob", 30)
	placeOrder(t, c, "o-3", "alice", 20)
	appendEvent(t, c, "o-1", "ItemAdded", `{"sku":"s-1","price":5}`)
	appendEvent(t, c, "o-2", "OrderShipped", `{}`)
	placeOrder(t, c, "o-4", "carol", 1)
	last := appendEvent(t, c, "o-4", "OrderCancelled", `{}`)

	got := query(t, c, "orders", projection.Query{Get: ptr("o-1"), MinSeq: last})
	if got.Seq < last || got.Key != "o-1" {
		t.Fatalf("got seq %d key %q, want seq >= %d", got.Seq, got.Key, last)
	}
	doc := docMap(t, got.Doc)
	if doc["total"] != 15.0 || doc["status"] != "placed" || doc["customer"] != "alice" || len(doc["items"].([]any)) != 1 {
		t.Fatalf("got o-1 %v, want total 15, status placed, one item", doc)
	}
	_, err := c.Query("orders", projection.Query{Get: ptr("o-4")})
	wantAPIError(t, err, protocol.CodeNotFound)

	cases := []struct {
		name string
		f    projection.Filter
		want []string
	}{
		{"by status", projection.Filter{Index: "by_status", Eq: raw(`"placed"`)}, []string{"o-1", "o-3"}},
		{"by customer", projection.Filter{Index: "by_customer", Eq: raw(`"alice"`)}, []string{"o-1", "o-3"}},
		{"total range", projection.Filter{Index: "by_total", Gte: raw(`15`), Lt: raw(`30`)}, []string{"o-1", "o-3"}},
		{"total above", projection.Filter{Index: "by_total", Gt: raw(`15`)}, []string{"o-3", "o-2"}},
		{"total desc", projection.Filter{Index: "by_total", Desc: true}, []string{"o-2", "o-3", "o-1"}},
		{"total at most, desc", projection.Filter{Index: "by_total", Lte: raw(`20`), Desc: true}, []string{"o-3", "o-1"}},
		{"key prefix", projection.Filter{Prefix: "o-"}, []string{"o-1", "o-2", "o-3"}},
		{"all keys desc", projection.Filter{Desc: true}, []string{"o-3", "o-2", "o-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			r := query(t, c, "orders", projection.Query{List: &f})
			if fmt.Sprint(keys(r.Docs)) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", keys(r.Docs), tc.want)
			}
			if r.Next == nil || *r.Next != "" {
				t.Fatalf("got next %v, want empty", r.Next)
			}
			cf := tc.f
			cnt := query(t, c, "orders", projection.Query{Count: &cf})
			if cnt.Count == nil || *cnt.Count != len(tc.want) {
				t.Fatalf("got count %v, want %d", cnt.Count, len(tc.want))
			}
		})
	}

	// History and time travel.
	h := query(t, c, "orders", projection.Query{History: ptr("o-1")})
	if len(h.History) != 2 || docMap(t, h.History[0].Doc)["total"] != 10.0 {
		t.Fatalf("got history %+v, want 2 versions, the first with total 10", h.History)
	}
	at := query(t, c, "orders", projection.Query{Get: ptr("o-1"), AtSeq: h.History[0].Seq})
	if docMap(t, at.Doc)["total"] != 10.0 {
		t.Fatalf("got %s at seq %d, want total 10", at.Doc, h.History[0].Seq)
	}
	_, err = c.Query("orders", projection.Query{Get: ptr("o-4"), AtSeq: last})
	wantAPIError(t, err, protocol.CodeNotFound)
}

func TestQueryErrors(t *testing.T) {
	n := newNode(t)
	nc := dial(t, n)
	c := client.New(nc)
	applyOrders(t, c)
	cases := []struct {
		name, subject, body string
		status, code        string
	}{
		{"unknown projection", "dm.query.nope", `{"get":"x"}`, "404", protocol.CodeNotFound},
		{"unknown version", "dm.query.orders.v9", `{"get":"x"}`, "404", protocol.CodeNotFound},
		{"bad version token", "dm.query.orders.nine", `{"get":"x"}`, "400", protocol.CodeBadRequest},
		{"unknown index", "dm.query.orders", `{"list":{"index":"by_color","eq":"red"}}`, "400", protocol.CodeBadRequest},
		{"malformed body", "dm.query.orders", `{"get":`, "400", protocol.CodeBadRequest},
		{"unknown field", "dm.query.orders", `{"fetch":"x"}`, "400", protocol.CodeBadRequest},
		{"no operation", "dm.query.orders", `{}`, "400", protocol.CodeBadRequest},
		{"two operations", "dm.query.orders", `{"get":"x","count":{}}`, "400", protocol.CodeBadRequest},
		{"range without index", "dm.query.orders", `{"list":{"gt":1}}`, "400", protocol.CodeBadRequest},
		{"limit too big", "dm.query.orders", `{"list":{"limit":5000}}`, "400", protocol.CodeBadRequest},
		{"bad cursor", "dm.query.orders", `{"list":{"after":"!!"}}`, "400", protocol.CodeBadRequest},
		{"missing doc", "dm.query.orders", `{"get":"x"}`, "404", protocol.CodeNotFound},
		{"retry a live projection", "dm.admin.projection.retry", `{"name":"orders"}`, "409", protocol.CodeConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErrorReply(t, request(t, nc, tc.subject, nil, tc.body), tc.status, tc.code)
		})
	}
	// Redefining a version is refused: a version identifies its code.
	changed := []byte("kind: Projection\nname: orders\nversion: 1\nsource: {aggregates: [order], types: [OrderPlaced]}\nkey: event.id\nhandlers: {OrderPlaced: \"{}\"}\n")
	_, err := c.Apply(changed, false)
	if e := wantAPIError(t, err, protocol.CodeConflict); e.Message == "" {
		t.Fatal("no message")
	}
	// A compile error names the line.
	broken := []byte("kind: Projection\nname: broken\nversion: 1\nsource: {aggregates: [order], types: [OrderPlaced]}\nkey: event.id\nhandlers:\n  OrderPlaced: \"merge(doc,\"\n")
	_, err = c.Apply(broken, false)
	e := wantAPIError(t, err, protocol.CodeBadRequest)
	if !strings.Contains(e.Message, "line 7") || !strings.Contains(e.Message, "handlers.OrderPlaced") {
		t.Fatalf("got %q, want the line and the handler named", e.Message)
	}
}

func TestReadYourWritesInParallel(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				r, err := c.Append("order", id, "OrderPlaced", fmt.Appendf(nil, `{"customer":"c%d","total":%d}`, w, i), client.AppendOptions{})
				if err != nil {
					errs <- err
					return
				}
				got, err := c.Get("orders", id, r.Seq)
				if err != nil {
					errs <- fmt.Errorf("read own write %s at seq %d: %w", id, r.Seq, err)
					return
				}
				if got.Seq < r.Seq || got.Key != id {
					errs <- fmt.Errorf("got seq %d key %s, want >= %d and %s", got.Seq, got.Key, r.Seq, id)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cnt := query(t, c, "orders", projection.Query{Count: &projection.Filter{}})
	if *cnt.Count != writers*each {
		t.Fatalf("got %d documents, want %d", *cnt.Count, writers*each)
	}
}

func TestMinSeqOfAnUnrelatedEventDoesNotWait(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	placeOrder(t, c, "o-1", "alice", 1)
	r, err := c.Append("invoice", "i-1", "InvoiceSent", []byte(`{}`), client.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Query("orders", projection.Query{Get: ptr("o-1"), MinSeq: r.Seq, TimeoutMS: 2000})
	if err != nil {
		t.Fatalf("min_seq of an event outside the source: %v", err)
	}
	if got.Key != "o-1" {
		t.Fatalf("got %+v", got)
	}
}

func TestFailingProjectionStopsAlone(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	strict := []byte(`kind: Projection
name: strict
version: 1
source: {aggregates: [order], types: [OrderPlaced]}
key: event.id
handlers:
  OrderPlaced: "data.total > 100 ? merge(doc, {big: data.customer.name}) : {total: data.total}"
on_error: stop
---
kind: Projection
name: lenient
version: 1
source: {aggregates: [order], types: [OrderPlaced]}
key: event.id
handlers:
  OrderPlaced: "data.total > 100 ? merge(doc, {big: data.customer.name}) : {total: data.total}"
on_error: skip
`)
	if _, err := c.Apply(strict, false); err != nil {
		t.Fatal(err)
	}
	placeOrder(t, c, "o-1", "alice", 5)
	bad := placeOrder(t, c, "o-2", "bob", 500) // data.customer.name fails: customer is a string
	last := placeOrder(t, c, "o-3", "carol", 7)

	// The healthy projections see everything.
	if got := query(t, c, "orders", projection.Query{Get: ptr("o-3"), MinSeq: last}); got.Key != "o-3" {
		t.Fatalf("orders: got %+v", got)
	}
	if got := query(t, c, "lenient", projection.Query{Get: ptr("o-3"), MinSeq: last}); got.Key != "o-3" {
		t.Fatalf("lenient: got %+v", got)
	}
	// The strict one stopped at the bad event and says so.
	_, err := c.Query("strict", projection.Query{Get: ptr("o-3"), MinSeq: last, TimeoutMS: 3000})
	e := wantAPIError(t, err, protocol.CodeNotUpToDate)
	if e.Seq == nil || *e.Seq != bad-1 {
		t.Fatalf("got %+v, want seq %d", e, bad-1)
	}
	st, err := c.Projections()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]projection.Status{}
	for _, s := range st.Projections {
		byName[s.Name] = s
	}
	s := byName["strict"]
	if s.State != projection.StateFailed || s.Failure == nil || s.Failure.Seq != bad || s.Failure.EventID == "" || s.LastError == "" {
		t.Fatalf("got strict status %+v, want failed at seq %d with the event id and error", s, bad)
	}
	if l := byName["lenient"]; l.State != projection.StateLive || l.DeadLetters != 1 || l.Documents != 2 {
		t.Fatalf("got lenient status %+v, want live with 1 dead letter and 2 documents", l)
	}
	if o := byName["orders"]; o.State != projection.StateLive || o.Documents != 3 || o.Applied < last {
		t.Fatalf("got orders status %+v", o)
	}
	// Retry runs it again from its checkpoint: the same event fails again.
	if _, err := c.Retry("strict", 0); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		st, err := c.Projections()
		if err != nil {
			return err
		}
		for _, s := range st.Projections {
			if s.Name == "strict" && s.State == projection.StateFailed && s.Failure != nil && s.Failure.Seq == bad {
				return nil
			}
		}
		return fmt.Errorf("strict not failed again at %d: %+v", bad, st.Projections)
	})
}

func TestPaginationIsStableUnderWrites(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	var last uint64
	for i := range 40 {
		last = placeOrder(t, c, fmt.Sprintf("o-%02d", i), "alice", float64(i%5))
	}
	query(t, c, "orders", projection.Query{Count: &projection.Filter{}, MinSeq: last})

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // new orders arrive and old ones change while we page
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			placeOrder(t, c, fmt.Sprintf("new-%03d", i), "alice", float64(i%5))
		}
	}()
	seen := map[string]int{}
	after := ""
	for pages := 0; ; pages++ {
		r := query(t, c, "orders", projection.Query{List: &projection.Filter{Index: "by_customer", Eq: raw(`"alice"`), Limit: 7, After: after}})
		for _, d := range r.Docs {
			seen[d.Key]++
		}
		if *r.Next == "" || pages > 100 {
			break
		}
		after = *r.Next
	}
	close(done)
	wg.Wait()
	for i := range 40 {
		k := fmt.Sprintf("o-%02d", i)
		if seen[k] != 1 {
			t.Fatalf("document %s seen %d times, want once", k, seen[k])
		}
	}
	for k, times := range seen {
		if times != 1 {
			t.Fatalf("document %s seen %d times", k, times)
		}
	}
}

func TestChangeEvents(t *testing.T) {
	n := newNode(t)
	nc := dial(t, n)
	c := client.New(nc)
	applyOrders(t, c)
	changes := make(chan *nats.Msg, 10)
	sub, err := nc.ChanSubscribe("dm.changes.orders.>", changes)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Changes are per committed batch: wait for the first before the second,
	// or both may fold into one batch and one delete.
	placed := placeOrder(t, c, "o-1", "alice", 3)
	query(t, c, "orders", projection.Query{Get: ptr("o-1"), MinSeq: placed})
	cancelled := appendEvent(t, c, "o-1", "OrderCancelled", `{}`)
	want := []struct {
		op  string
		seq uint64
	}{{"upsert", placed}, {"delete", cancelled}}
	for _, w := range want {
		select {
		case m := <-changes:
			var ch projection.Change
			if err := json.Unmarshal(m.Data, &ch); err != nil {
				t.Fatal(err)
			}
			if m.Subject != "dm.changes.orders.o-1" || ch.Op != w.op || ch.Key != "o-1" || ch.Seq != w.seq {
				t.Fatalf("got %s %+v, want %s at seq %d", m.Subject, ch, w.op, w.seq)
			}
			if w.op == "upsert" && docMap(t, ch.Doc)["customer"] != "alice" {
				t.Fatalf("got doc %s", ch.Doc)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s change event", w.op)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func raw(s string) json.RawMessage { return json.RawMessage(s) }
