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

// applied is the dump of a store that applied events with spec.
func applied(t testing.TB, spec *Spec, events []*Event) string {
	t.Helper()
	s := openStore(t, filepath.Join(t.TempDir(), "applied.db"), spec)
	defer s.Close()
	applyAll(t, s, spec, events, 7)
	return dump(t, s)
}

// oldLayoutFile writes at path what DataMesh 0.1.0 stored for events: the
// documents, the checkpoint and, for every version, h:<key>\x00<seq> → the
// document or null (0.1.0 had no retention). It takes the documents and
// versions from a store that applied events.
func oldLayoutFile(t testing.TB, path string, events []*Event) {
	t.Helper()
	spec := mustSpec(t, ordersSpec)
	ref := openStore(t, filepath.Join(t.TempDir(), "ref.db"), spec)
	defer ref.Close()
	applyAll(t, ref, spec, events, 7)
	useMemLog(t, ref, spec, events)
	db, err := buntdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var keys []string
	err = ref.db.View(func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool {
			if key, ok := strings.CutPrefix(k, histPrefix); ok {
				keys = append(keys, key)
				return true
			}
			err := db.Update(func(wtx *buntdb.Tx) error { _, _, err := wtx.Set(k, v, nil); return err })
			return err == nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		res, err := ref.Run(context.Background(), &Query{History: &key})
		if err != nil {
			t.Fatalf("history of %s: %v", key, err)
		}
		err = db.Update(func(tx *buntdb.Tx) error {
			for _, v := range res.History {
				if _, _, err := tx.Set(histPrefix+key+histSep+seqKey(v.Seq), string(v.Doc), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// conversionLogs are orderLog (cancelled orders) followed by retentionLog
// (an order placed again after its cancellation), moved after it.
func conversionLog() []*Event {
	events := orderLog(200)
	for _, ev := range retentionLog() {
		ev.Seq += 200
		ev.ID = "r" + ev.ID
		events = append(events, ev)
	}
	return events
}

// TestConvertOldHistory opens a file with 0.1.0's history layout: it is
// converted in place (not rebuilt: the checkpoint and documents stay),
// holds what a store that applied the same log holds, and answers the
// same history.
func TestConvertOldHistory(t *testing.T) {
	for history, ro2 := range map[string]string{"true": "[206 207 208 209 210 211]", "{keep: 2}": "[210 211]"} {
		t.Run(history, func(t *testing.T) {
			spec := mustSpec(t, strings.Replace(ordersSpec, "history: true", "history: "+history, 1))
			events := conversionLog()
			path := filepath.Join(t.TempDir(), "old.db")
			oldLayoutFile(t, path, events)
			want := applied(t, spec, events)
			old, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := openStore(t, path, spec)
			defer s.Close()
			if s.Rebuilt {
				t.Fatal("got a rebuilt store, want the file converted")
			}
			if got := dump(t, s); got != want {
				t.Fatalf("converted file:\n%s\nwant what the new layout stores:\n%s", first(got, 1500), first(want, 1500))
			}
			if cp, _ := s.Checkpoint(); cp != uint64(len(events)) {
				t.Fatalf("got checkpoint %d, want %d", cp, len(events))
			}
			full, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(full, old) {
				t.Fatal("the file was rewritten, not appended to (rebuilt?)")
			}
			useMemLog(t, s, spec, events)
			if got := fmt.Sprint(historySeqs(t, s, "ro-2")); got != ro2 {
				t.Fatalf("history of ro-2: got %s, want %s", got, ro2)
			}
		})
	}
}

// TestConvertOldHistoryCrash cuts the conversion's writes at every command
// boundary and inside commands: the reopened file is converted or rebuilt,
// and after the replay holds exactly what a clean run holds.
func TestConvertOldHistoryCrash(t *testing.T) {
	spec := mustSpec(t, ordersSpec)
	events := conversionLog()
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	oldLayoutFile(t, path, events)
	want := applied(t, spec, events)
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	openStore(t, path, spec).Close()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tail := full[len(base):]
	cuts, converted := 0, 0
	for i := 1; i < len(tail); i++ {
		if tail[i] != '*' || tail[i-1] != '\n' {
			continue
		}
		for _, cut := range []int{i, i + 1} { // between commands; one byte into one
			torn := filepath.Join(dir, fmt.Sprintf("torn-%d.db", cut))
			if err := os.WriteFile(torn, append(bytes.Clone(base), tail[:cut]...), 0o644); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, torn, spec)
			if !s.Rebuilt {
				converted++
			}
			applyAll(t, s, spec, events, 1000)
			if got := dump(t, s); got != want {
				t.Fatalf("cut at %d of %d (rebuilt %v): got\n%s\nwant\n%s", cut, len(tail), s.Rebuilt, first(got, 1500), first(want, 1500))
			}
			s.Close()
			cuts++
		}
	}
	t.Logf("%d cuts, %d of them converted, the others rebuilt", cuts, converted)
	if cuts < 100 || converted < cuts/2 {
		t.Fatalf("%d cuts, %d converted: want at least 100, half of them converted", cuts, converted)
	}
}

// TestConvertOldHistoryLost: 0.1.0 could lose a batch's history entries
// and keep its documents; such a file is rebuilt, not converted.
func TestConvertOldHistoryLost(t *testing.T) {
	spec := mustSpec(t, ordersSpec)
	events := conversionLog()
	for name, drop := range map[string]string{
		"last version":  "h:o-3\x00" + seqKey(20),
		"whole history": "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.db")
			oldLayoutFile(t, path, events)
			want := applied(t, spec, events)
			db, err := buntdb.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *buntdb.Tx) error {
				keys := []string{drop}
				if drop == "" {
					keys = nil
					tx.AscendKeys("h:o-4\x00*", func(k, _ string) bool { keys = append(keys, k); return true })
				}
				for _, k := range keys {
					if _, err := tx.Delete(k); err != nil {
						return fmt.Errorf("delete %q: %w", k, err)
					}
				}
				return nil
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			s := openStore(t, path, spec)
			defer s.Close()
			if !s.Rebuilt {
				t.Fatal("got a converted store, want it rebuilt")
			}
			applyAll(t, s, spec, events, 1000)
			if got := dump(t, s); got != want {
				t.Fatalf("rebuilt file:\n%s\nwant\n%s", first(got, 1500), first(want, 1500))
			}
		})
	}
}

func first(s string, n int) string { return s[:min(len(s), n)] }
