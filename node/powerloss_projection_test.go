package node_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// The tally projection of the power-loss and crash tests: one document per
// aggregate id of the loads' events, with how many events it applied, the
// sum of their seqs and of their data's i, and the last seq. An event
// applied twice, or skipped, changes n and seqs: the documents equal a
// fold of the log computed here only if every event was applied once.
const tallyName = "tally"

func tallyYAML(version int) string {
	const handler = `"{n: (doc?.n ?? 0) + 1, seqs: (doc?.seqs ?? 0) + event.seq, is: (doc?.is ?? 0) + (data?.i ?? 0), last: event.seq}"`
	return fmt.Sprintf(`kind: Projection
name: %s
version: %d
description: Events per aggregate id, for the crash tests.
source:
  aggregates: [order, stock]
  types: [ItemAdded, StockMoved]
key: event.id
handlers:
  ItemAdded: %s
  StockMoved: %s
on_error: stop
`, tallyName, version, handler, handler)
}

// tallyDoc is one tally document.
type tallyDoc struct {
	N    float64 `json:"n"`
	Seqs float64 `json:"seqs"`
	Is   float64 `json:"is"`
	Last float64 `json:"last"`
}

// foldTally computes the tally documents from a log read by readStoredLog.
func foldTally(stored map[uint64]protocol.Event) map[string]tallyDoc {
	seqs := make([]uint64, 0, len(stored))
	for seq := range stored {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	docs := make(map[string]tallyDoc)
	for _, seq := range seqs {
		ev := stored[seq]
		if ev.Type != "ItemAdded" && ev.Type != "StockMoved" {
			continue
		}
		var data struct{ I float64 }
		json.Unmarshal(ev.Data, &data)
		d := docs[ev.AggregateID]
		d.N++
		d.Seqs += float64(seq)
		d.Is += data.I
		d.Last = float64(seq)
		docs[ev.AggregateID] = d
	}
	return docs
}

// listTally lists every document of one version of the tally, once it has
// applied the log up to head (0: at once), page by page.
func listTally(c *client.Client, version int, head uint64) (map[string]tallyDoc, error) {
	docs := make(map[string]tallyDoc)
	q := projection.Query{List: &projection.Filter{Limit: 1000}, Version: version, MinSeq: head, TimeoutMS: 30000}
	for page := 0; ; page++ {
		r, err := c.Query(tallyName, q)
		if err != nil {
			return nil, fmt.Errorf("list v%d (page %d, waiting for seq %d): %w", version, page, head, err)
		}
		for _, d := range r.Docs {
			var doc tallyDoc
			if err := json.Unmarshal(d.Doc, &doc); err != nil {
				return nil, fmt.Errorf("v%d document %s: %w", version, d.Key, err)
			}
			docs[d.Key] = doc
		}
		if r.Next == nil || *r.Next == "" {
			return docs, nil
		}
		q.List.After, q.MinSeq = *r.Next, 0
	}
}

// diffTally lists how the documents served by one version of the tally
// differ from the fold of the log (nil if they do not).
func diffTally(c *client.Client, version int, stored map[uint64]protocol.Event) ([]string, error) {
	var head uint64
	for seq := range stored {
		head = max(head, seq)
	}
	got, err := listTally(c, version, head)
	if err != nil {
		return nil, err
	}
	want := foldTally(stored)
	var diffs []string
	for key, w := range want {
		if g, ok := got[key]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %+v", key, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, want %+v", key, g, w))
		}
	}
	for key, g := range got {
		if _, ok := want[key]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %+v, but no event of the log has that id", key, g))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

// checkTally fails t unless each version of the tally serves, document by
// document, the fold of the log (stored: the whole log).
func checkTally(t testing.TB, c *client.Client, stored map[uint64]protocol.Event, versions ...int) {
	t.Helper()
	for _, v := range versions {
		diffs, err := diffTally(c, v, stored)
		if err != nil {
			t.Errorf("tally v%d: %v; projections: %s", v, err, projectionsStatus(c))
			continue
		}
		if len(diffs) > 0 {
			t.Errorf("tally v%d differs from a fold of the log (%d events) in %d documents:\n%v",
				v, len(stored), len(diffs), first(diffs, 10))
		}
	}
}

// projectionsStatus is the node's projection status, for failures.
func projectionsStatus(c *client.Client) string {
	r, err := c.Projections()
	if err != nil {
		return err.Error()
	}
	b, _ := json.Marshal(r.Projections)
	return string(b)
}
