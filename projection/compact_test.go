package projection

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSettleCompacts: a store that grew past twice its size at open is
// compacted as the worker catches up (same records, a smaller file); one
// reopened at the head and settled again is not written to.
func TestSettleCompacts(t *testing.T) {
	spec := mustSpec(t, ordersSpec)
	events := orderLog(20000)
	path := filepath.Join(t.TempDir(), "c.db")
	s := openStore(t, path, spec)
	applyAll(t, s, spec, events, 1) // every version rewrites its document
	want := dump(t, s)
	grown := s.Stats().FileBytes
	if grown < compactMinBytes {
		t.Fatalf("the file is %d bytes: want a test past %d", grown, compactMinBytes)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	compacted := s.Stats().FileBytes
	if compacted*2 > grown {
		t.Fatalf("got a file of %d bytes after the compaction, want at most half of %d", compacted, grown)
	}
	if got := dump(t, s); got != want {
		t.Fatal("the compaction changed the records")
	}
	s.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, spec)
	defer s.Close()
	if s.Rebuilt || dump(t, s) != want {
		t.Fatalf("reopened after the compaction: rebuilt %v, same records %v", s.Rebuilt, dump(t, s) == want)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("a file reopened at the head was rewritten: %d bytes, was %d", len(after), len(before))
	}
}
