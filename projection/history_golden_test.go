package projection_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/projection"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenSpec is the orders projection with a handler that sometimes leaves
// the document as it is (nil), so that not every event makes a version.
const goldenSpec = `
kind: Projection
name: orders
version: 1
source:
  aggregates: [order]
  types: [OrderPlaced, ItemAdded, OrderShipped, OrderCancelled]
key: event.id
handlers:
  OrderPlaced: "{customer: data.customer, status: 'placed', total: data.total, items: [], at: now()}"
  ItemAdded: "merge(doc, {items: doc?.items + [data], total: (doc?.total ?? 0) + data.price})"
  OrderShipped: "doc == nil ? nil : merge(doc, {status: 'shipped', n: len(doc.items)})"
  OrderCancelled: "delete()"
history: true
`

// goldenLog appends a deterministic log of n orders whose events
// interleave: round r appends the r-th event of every order still going,
// so that one order's events are spread over the whole log and over many
// batches. Some orders are cancelled (a null version) and some get events
// after their cancellation (a document made again from nothing).
func goldenLog(t testing.TB, l *testLog, n int) uint64 {
	t.Helper()
	var last uint64
	for r := 0; r < 12; r++ {
		for o := 0; o < n; o++ {
			typ, data, ok := goldenEvent(o, r)
			if !ok {
				continue
			}
			m := nats.NewMsg(fmt.Sprintf("%s.order.o-%d.%s", testPrefix, o, typ))
			m.Header.Set("ce-type", typ)
			m.Header.Set("ce-id", fmt.Sprintf("o-%d-%d", o, r))
			m.Header.Set("ce-time", time.Date(2026, 1, 1, 0, r, o%60, 0, time.UTC).Format(time.RFC3339Nano))
			m.Data = []byte(data)
			ack, err := l.js.PublishMsg(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			last = ack.Sequence
		}
	}
	return last
}

// goldenEvent is order o's event of round r, if it has one.
func goldenEvent(o, r int) (typ, data string, ok bool) {
	events := 3 + o%10 // 3 to 12 events per order
	if r >= events {
		return "", "", false
	}
	switch {
	case r == 0 && o%9 == 4:
		return "ItemAdded", `{"sku":"orphan","price":2}`, true // before any OrderPlaced
	case r == 0:
		return "OrderPlaced", fmt.Sprintf(`{"customer":"c-%d","total":%d}`, o%7, o%3), true
	case r%4 == 3:
		return "OrderShipped", `{}`, true
	case r == 5 && o%3 == 0:
		return "OrderCancelled", `{}`, true
	case r == 8 && o%5 == 0:
		return "OrderPlaced", fmt.Sprintf(`{"customer":"again-%d","total":1.25}`, o), true
	}
	return "ItemAdded", fmt.Sprintf(`{"sku":"s-%d-%d","price":%d.5}`, o, r, (o+r)%4), true
}

// goldenAnswer is one query's answer, or its error.
type goldenAnswer struct {
	Seq     uint64               `json:"seq,omitempty"`
	Doc     json.RawMessage      `json:"doc,omitempty"`
	History []projection.Version `json:"history,omitempty"`
	Error   string               `json:"error,omitempty"`
}

// goldenKey is every answer about one document: its history and the
// document at each seq where it may differ.
type goldenKey struct {
	History goldenAnswer            `json:"history"`
	At      map[uint64]goldenAnswer `json:"at"`
}

func answer(res *projection.Result, err error) goldenAnswer {
	if err != nil {
		return goldenAnswer{Error: err.Error()}
	}
	return goldenAnswer{Seq: res.Seq, Doc: res.Doc, History: res.History}
}

// historyAnswers asks the history of every order and the document at every
// seq around each of its versions, and at the head.
func historyAnswers(t testing.TB, w *projection.Worker, n int, head uint64) map[string]goldenKey {
	t.Helper()
	ctx := context.Background()
	out := map[string]goldenKey{}
	for o := 0; o <= n; o++ { // o-n has no document: not found
		key := fmt.Sprintf("o-%d", o)
		h := answer(w.Query(ctx, &projection.Query{History: &key}))
		gk := goldenKey{History: h, At: map[uint64]goldenAnswer{}}
		seqs := []uint64{1, head, head + 10}
		for _, v := range h.History {
			seqs = append(seqs, v.Seq-1, v.Seq, v.Seq+1)
		}
		for _, s := range seqs {
			if s == 0 {
				continue
			}
			gk.At[s] = answer(w.Query(ctx, &projection.Query{Get: &key, AtSeq: s}))
		}
		out[key] = gk
	}
	return out
}

// goldenLines is one line of JSON per document, in key order: a change
// shows as the lines of the documents it is about.
func goldenLines(t testing.TB, answers map[string]goldenKey) []byte {
	t.Helper()
	keys := make([]string, 0, len(answers))
	for k := range answers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		line, err := json.Marshal(map[string]goldenKey{k: answers[k]})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestHistoryMatchesGolden compares every history and at_seq answer for
// 300 orders with the answers of the implementation that stored a full
// copy of every version (testdata/history_golden.json, written by it with
// -update before history was rebuilt from the log).
func TestHistoryMatchesGolden(t *testing.T) {
	const orders = 300
	l := startLog(t)
	head := goldenLog(t, l, orders)
	spec, err := projection.Decode([]byte(goldenSpec))
	if err != nil {
		t.Fatal(err)
	}
	m := startManager(t, l.managerConfig(t, t.TempDir(), newMemStore()))
	apply(t, m, spec)
	waitState(t, m, "orders", 1, projection.StateLive)
	w, _, err := m.Worker("orders", 1)
	if err != nil {
		t.Fatal(err)
	}
	got := goldenLines(t, historyAnswers(t, w, orders, head))
	path := filepath.Join("testdata", "history_golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range min(len(g), len(w)) {
			if !bytes.Equal(g[i], w[i]) {
				t.Fatalf("line %d: got %s\nwant %s", i+1, g[i], w[i])
			}
		}
		t.Fatalf("answers differ from %s (%d bytes, want %d)", path, len(got), len(want))
	}
}
