package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/buntdb"
)

// retentionLog is o-1: placed then four items (seqs 1-5); o-2: placed,
// cancelled, placed again, three items (seqs 6-11). Event i happened i
// hours after 2026-01-01.
func retentionLog() []*Event {
	types := []string{"OrderPlaced", "ItemAdded", "ItemAdded", "ItemAdded", "ItemAdded",
		"OrderPlaced", "OrderCancelled", "OrderPlaced", "ItemAdded", "ItemAdded", "ItemAdded"}
	var evs []*Event
	for i, typ := range types {
		seq := uint64(i + 1)
		id := "o-1"
		if seq > 5 {
			id = "o-2"
		}
		data := fmt.Sprintf(`{"sku":"s-%d","price":%d,"customer":"c","total":0}`, seq, seq)
		evs = append(evs, &Event{ID: id, EventID: fmt.Sprint(seq), Type: typ, Aggregate: "order", Seq: seq,
			Time: time.Date(2026, 1, 1, int(seq), 0, 0, 0, time.UTC).Format(time.RFC3339), Data: []byte(data)})
	}
	return evs
}

func retentionStore(t *testing.T, history string) *Store {
	t.Helper()
	spec := mustSpec(t, strings.Replace(ordersSpec, "history: true", "history: "+history, 1))
	s := openStore(t, filepath.Join(t.TempDir(), "r.db"), spec)
	t.Cleanup(func() { s.Close() })
	events := retentionLog()
	applyAll(t, s, spec, events, 4) // batches of 4: o-2's versions cross batches
	useMemLog(t, s, spec, events)
	return s
}

func historySeqs(t *testing.T, s *Store, key string) []uint64 {
	t.Helper()
	res, err := s.Run(context.Background(), &Query{History: &key})
	if err != nil {
		t.Fatalf("history %s: %v", key, err)
	}
	var seqs []uint64
	for _, v := range res.History {
		seqs = append(seqs, v.Seq)
	}
	return seqs
}

func wantBeyond(t *testing.T, s *Store, key string, seq uint64, retention string) {
	t.Helper()
	_, err := s.Run(context.Background(), &Query{Get: &key, AtSeq: seq})
	want := fmt.Sprintf("document %q at seq %d: the version is beyond the projection's history retention (%s)", key, seq, retention)
	if !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Fatalf("at_seq %d of %s: got %v, want not found: %s", seq, key, err, want)
	}
}

func wantAt(t *testing.T, s *Store, key string, seq uint64, total float64) {
	t.Helper()
	res, err := s.Run(context.Background(), &Query{Get: &key, AtSeq: seq})
	if err != nil {
		t.Fatalf("at_seq %d of %s: %v", seq, key, err)
	}
	var doc struct{ Total float64 }
	if err := json.Unmarshal(res.Doc, &doc); err != nil || doc.Total != total {
		t.Fatalf("at_seq %d of %s: got %s, want total %v", seq, key, res.Doc, total)
	}
}

func TestHistoryKeep(t *testing.T) {
	s := retentionStore(t, "{keep: 3}")
	if got := fmt.Sprint(historySeqs(t, s, "o-1")); got != "[3 4 5]" {
		t.Fatalf("history of o-1: got versions %s, want [3 4 5]", got)
	}
	if got := fmt.Sprint(historySeqs(t, s, "o-2")); got != "[9 10 11]" {
		t.Fatalf("history of o-2: got versions %s, want [9 10 11]", got)
	}
	wantBeyond(t, s, "o-1", 2, "keep: 3")
	wantAt(t, s, "o-1", 3, 2+3) // rebuilt from seq 1, which is beyond retention
	wantAt(t, s, "o-1", 100, 2+3+4+5)
	wantBeyond(t, s, "o-2", 6, "keep: 3")
	wantBeyond(t, s, "o-2", 7, "keep: 3")
	wantAt(t, s, "o-2", 9, 9)
	// The store dropped what no kept version needs: o-2's versions up to its
	// cancellation. o-1 keeps seq 1 and 2, folded to rebuild seq 3.
	for key, want := range map[string]string{"o-1": "1,1,1,1,1", "o-2": "~8,1,1,1"} {
		if got := dumpKey(t, s, histKey(key)); got != want {
			t.Fatalf("record of %s: got %q, want %q", key, got, want)
		}
	}
}

func TestHistoryMaxAge(t *testing.T) {
	s := retentionStore(t, "{max_age: 2h}")
	s.src.now = func() time.Time { return time.Date(2026, 1, 1, 11, 30, 0, 0, time.UTC) }
	// o-2's versions at 10:00 and 11:00 are younger than 2h; o-1's latest
	// version (05:00) stays: it is the document.
	if got := fmt.Sprint(historySeqs(t, s, "o-2")); got != "[10 11]" {
		t.Fatalf("history of o-2: got versions %s, want [10 11]", got)
	}
	if got := fmt.Sprint(historySeqs(t, s, "o-1")); got != "[5]" {
		t.Fatalf("history of o-1: got versions %s, want [5]", got)
	}
	wantBeyond(t, s, "o-2", 9, "max_age: 2h0m0s")
	wantBeyond(t, s, "o-2", 7, "max_age: 2h0m0s")
	wantAt(t, s, "o-2", 10, 9+10)
	wantAt(t, s, "o-1", 5, 2+3+4+5)
	_, err := s.Run(context.Background(), &Query{Get: new("o-9"), AtSeq: 3})
	if !errors.Is(err, ErrNotFound) || err.Error() != `no document "o-9" at seq 3` {
		t.Fatalf("at_seq of a key without history: got %v", err)
	}
}

func dumpKey(t *testing.T, s *Store, key string) string {
	t.Helper()
	var v string
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		v, err = tx.Get(key)
		return err
	})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return v
}

func TestHistorySpec(t *testing.T) {
	for _, c := range []struct{ yaml, json string }{
		{"true", `true`}, {"false", ``}, {"{}", `true`}, {"{keep: 100}", `{"keep":100}`},
		{"{max_age: 720h}", `{"max_age":"720h0m0s"}`}, {"{keep: 5, max_age: 30m}", `{"keep":5,"max_age":"30m0s"}`},
	} {
		s := mustSpec(t, strings.Replace(ordersSpec, "history: true", "history: "+c.yaml, 1))
		b, _ := json.Marshal(s)
		var back Spec
		if err := json.Unmarshal(b, &back); err != nil || !back.Equal(s) || back.History != s.History {
			t.Fatalf("history: %s: JSON %s does not read back (%v)", c.yaml, b, err)
		}
		if want := `"history":` + c.json; (c.json != "") != strings.Contains(string(b), want) {
			t.Fatalf("history: %s: got JSON %s, want it to hold %s", c.yaml, b, want)
		}
	}
	for yaml, want := range map[string]string{
		"{kepp: 3}":      `unknown field "kepp"`,
		"{keep: -1}":     "keep must not be negative",
		"{max_age: abc}": `max_age "abc": want a positive duration`,
		"3":              "history: want true, false or {keep: N, max_age: 720h}",
	} {
		_, err := Decode([]byte(strings.Replace(ordersSpec, "history: true", "history: "+yaml, 1)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("history: %s: got %v, want an error with %q", yaml, err, want)
		}
	}
}
