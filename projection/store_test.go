package projection

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/buntdb"
)

const ordersSpec = `
kind: Projection
name: orders
version: 1
source:
  aggregates: [order]
  types: [OrderPlaced, ItemAdded, OrderShipped, OrderCancelled]
key: event.id
handlers:
  OrderPlaced: "{customer: data.customer, status: 'placed', total: data.total, items: [], at: now()}"
  ItemAdded: "merge(doc, {items: doc.items + [data], total: doc.total + data.price})"
  OrderShipped: "merge(doc, {status: 'shipped'})"
  OrderCancelled: "delete()"
indexes:
  by_status: status
  by_total: {field: total, type: number}
history: true
`

func mustSpec(t testing.TB, doc string) *Spec {
	t.Helper()
	s, err := Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// orderLog makes a deterministic log of n events over n/5 orders.
func orderLog(n int) []*Event {
	evs := make([]*Event, 0, n)
	for seq := 1; seq <= n; seq++ {
		id := fmt.Sprintf("o-%d", (seq-1)/5)
		ev := &Event{ID: id, EventID: fmt.Sprintf("e-%d", seq), Aggregate: "order", Seq: uint64(seq), Time: fmt.Sprintf("2026-01-01T00:00:%02dZ", seq%60)}
		switch (seq - 1) % 5 {
		case 0:
			ev.Type, ev.Data = "OrderPlaced", fmt.Appendf(nil, `{"customer":"c-%d","total":%d}`, seq%7, seq%3)
		case 1, 2:
			ev.Type, ev.Data = "ItemAdded", fmt.Appendf(nil, `{"sku":"s-%d","price":%d.5}`, seq, seq%4)
		case 3:
			ev.Type, ev.Data = "OrderShipped", []byte(`{}`)
		default:
			if seq%3 == 0 {
				ev.Type, ev.Data = "OrderCancelled", []byte(`{}`)
			} else {
				ev.Type, ev.Data = "ItemAdded", []byte(`{"sku":"late","price":1}`)
			}
		}
		evs = append(evs, ev)
	}
	return evs
}

func openStore(t testing.TB, path string, spec *Spec) *Store {
	t.Helper()
	s, err := OpenStore(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// applyAll applies events in batches of size, from after the checkpoint.
func applyAll(t testing.TB, s *Store, spec *Spec, events []*Event, size int) {
	t.Helper()
	f, err := compileSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	var batch []*Event
	flush := func() {
		if len(batch) == 0 {
			return
		}
		res, err := s.Apply(batch, f, spec)
		if err != nil || res.Failure != nil {
			t.Fatalf("apply: %v %+v", err, res)
		}
		batch = batch[:0]
	}
	for _, ev := range events {
		if ev.Seq <= cp {
			continue
		}
		if batch = append(batch, ev); len(batch) == size {
			flush()
		}
	}
	flush()
}

// memLog is a log in memory, for stores tested without a server.
type memLog map[uint64]*Event

func (l memLog) events(_ context.Context, seqs []uint64) ([]*Event, error) {
	out := make([]*Event, len(seqs))
	for i, seq := range seqs {
		if out[i] = l[seq]; out[i] == nil {
			return nil, fmt.Errorf("no event at seq %d", seq)
		}
	}
	return out, nil
}

// useMemLog makes s rebuild history from events.
func useMemLog(t testing.TB, s *Store, spec *Spec, events []*Event) {
	t.Helper()
	f, err := compileSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	l := memLog{}
	for _, ev := range events {
		l[ev.Seq] = ev
	}
	s.useLog(l, f)
}

// dump is every key and value of the store, in key order.
func dump(t testing.TB, s *Store) string {
	t.Helper()
	var b strings.Builder
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool {
			fmt.Fprintf(&b, "%q=%s\n", k, v)
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestApplyIsDeterministic(t *testing.T) {
	spec := mustSpec(t, ordersSpec)
	events := orderLog(500)
	a := openStore(t, filepath.Join(t.TempDir(), "a.db"), spec)
	defer a.Close()
	b := openStore(t, filepath.Join(t.TempDir(), "b.db"), spec)
	defer b.Close()
	applyAll(t, a, spec, events, 1000)
	applyAll(t, b, spec, events, 7) // other batch sizes, same documents
	da, db := dump(t, a), dump(t, b)
	if da != db {
		t.Fatalf("two applications of the same log differ:\n%s\n---\n%s", da[:min(len(da), 2000)], db[:min(len(db), 2000)])
	}
	if cp, _ := a.Checkpoint(); cp != 500 {
		t.Fatalf("got checkpoint %d, want 500", cp)
	}
	st := a.Stats()
	if st.Documents != 67 { // 100 orders, 33 cancelled
		t.Fatalf("got %d documents, want 67", st.Documents)
	}
}

// TestTornWritesApplyEveryEventOnce cuts the file inside the last batch's
// write at every command boundary and in the middle of commands, reopens
// it as after a crash, replays from the checkpoint, and compares with a
// clean run, history records included: history is written in a transaction
// of its own before the documents', so no cut loses a version.
func TestTornWritesApplyEveryEventOnce(t *testing.T) {
	t.Run("history", func(t *testing.T) { testTornWrites(t, mustSpec(t, ordersSpec), true) })
	t.Run("no history", func(t *testing.T) {
		testTornWrites(t, mustSpec(t, strings.Replace(ordersSpec, "history: true", "history: false", 1)), true)
	})
	t.Run("keep", func(t *testing.T) {
		testTornWrites(t, mustSpec(t, strings.Replace(ordersSpec, "history: true", "history: {keep: 2}", 1)), true)
	})
}

// TestTornHistoryIsRebuilt: with history on, a cut inside a command makes
// the store start afresh and rebuild, history included.
func TestTornHistoryIsRebuilt(t *testing.T) {
	testTornWrites(t, mustSpec(t, ordersSpec), false)
}

func testTornWrites(t *testing.T, spec *Spec, boundaries bool) {
	events := orderLog(200)
	dir := t.TempDir()

	clean := openStore(t, filepath.Join(dir, "clean.db"), spec)
	applyAll(t, clean, spec, events, 1000)
	want := dump(t, clean)
	clean.Close()

	path := filepath.Join(dir, "torn.db")
	s := openStore(t, path, spec)
	applyAll(t, s, spec, events[:100], 1000)
	s.Close()
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, spec)
	applyAll(t, s, spec, events, 1000)
	s.Close()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(full, base) {
		t.Fatal("the file was rewritten, not appended to")
	}
	tail := full[len(base):]
	var cuts []int
	for i := 1; i < len(tail); i++ {
		if tail[i] != '*' || tail[i-1] != '\n' {
			continue
		}
		if boundaries {
			cuts = append(cuts, i) // between two commands: a prefix of whole commands
		}
		cuts = append(cuts, i+1) // one byte into a command: BuntDB truncates, the store rebuilds
	}
	for _, cut := range cuts {
		torn := filepath.Join(dir, fmt.Sprintf("torn-%d.db", cut))
		if err := os.WriteFile(torn, append(bytes.Clone(base), tail[:cut]...), 0o644); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, torn, spec)
		applyAll(t, s, spec, events, 1000)
		if got := dump(t, s); got != want {
			gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
			wset := map[string]bool{}
			for _, l := range wl {
				wset[l] = true
			}
			var diff []string
			for _, l := range gl {
				if !wset[l] {
					diff = append(diff, l)
				}
			}
			gset := map[string]bool{}
			for _, l := range gl {
				gset[l] = true
			}
			var missing []string
			for _, l := range wl {
				if !gset[l] {
					missing = append(missing, l)
				}
			}
			t.Fatalf("cut at %d of %d: state differs from a clean run; extra lines %q, missing lines %q", cut, len(tail), diff[:min(len(diff), 5)], missing[:min(len(missing), 5)])
		}
		s.Close()
	}
	if len(cuts) < 10 {
		t.Fatalf("only %d cuts tested", len(cuts))
	}
}
