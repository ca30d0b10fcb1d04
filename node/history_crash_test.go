package node_test

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/projection"
)

// TestKill9KeepsHistoryExact: the tally projection with history, live
// under concurrent appends, is SIGKILLed twice in the middle of its
// batches; after the restarts, the history of every document equals the
// history of a second version rebuilt from the log, and lists exactly the
// seqs of the document's events (every tally event makes a version).
func TestKill9KeepsHistoryExact(t *testing.T) {
	dir := t.TempDir()
	const kills = 2
	for cycle := 1; cycle <= kills; cycle++ {
		p := mustStartNodeProcess(t, dir, node.DurabilityOS)
		if cycle == 1 {
			apply(t, client.New(dialURL(t, p.url)), tallyYAML(1)+"history: true\n")
		}
		runAppendLoad(t, p, cycle, cycleAcks/2, cycleDuration/2) // SIGKILLs p under the load
	}
	p := mustStartNodeProcess(t, dir, node.DurabilityOS)
	nc := dialURL(t, p.url)
	c := client.New(nc).WithTimeout(40 * time.Second)
	apply(t, c, tallyYAML(2)+"history: true\n") // a fresh rebuild of the same log
	stored := readStoredLog(t, nc, 1)
	var head uint64
	want := map[string][]uint64{} // each document's versions: its events' seqs
	for seq, ev := range stored {
		head = max(head, seq)
		if ev.Type == "ItemAdded" || ev.Type == "StockMoved" {
			want[ev.AggregateID] = append(want[ev.AggregateID], seq)
		}
	}
	if len(want) == 0 {
		t.Fatal("no tally event in the log")
	}
	for key, seqs := range want {
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		v1 := tallyHistory(t, c, key, 1, head)
		v2 := tallyHistory(t, c, key, 2, head)
		if !reflect.DeepEqual(v1, v2) {
			t.Fatalf("history of %s: after the kills %d versions, rebuilt %d; first differing: %s", key, len(v1), len(v2), firstDiff(v1, v2))
		}
		got := make([]uint64, len(v1))
		for i, v := range v1 {
			got[i] = v.Seq
		}
		if !reflect.DeepEqual(got, seqs) {
			t.Fatalf("history of %s: got versions at %v, want %v", key, first(got, 20), first(seqs, 20))
		}
	}
	t.Logf("%d documents, %d events: history after %d SIGKILLs equals a fresh rebuild", len(want), len(stored), kills)
}

// tallyHistory is the history of key in one version of the tally, once it
// has applied the log up to head.
func tallyHistory(t testing.TB, c *client.Client, key string, version int, head uint64) []projection.Version {
	t.Helper()
	r, err := c.Query(tallyName, projection.Query{History: &key, Version: version, MinSeq: head, TimeoutMS: 30000})
	if err != nil {
		t.Fatalf("history of %s in v%d: %v; projections: %s", key, version, err, projectionsStatus(c))
	}
	return r.History
}

// firstDiff describes the first version where a and b differ.
func firstDiff(a, b []projection.Version) string {
	for i := range min(len(a), len(b)) {
		if a[i].Seq != b[i].Seq || string(a[i].Doc) != string(b[i].Doc) {
			return fmt.Sprintf("#%d: seq %d %s, want seq %d %s", i, a[i].Seq, a[i].Doc, b[i].Seq, b[i].Doc)
		}
	}
	return "one is a prefix of the other"
}
