package eventlog

import (
	"os"
	"path/filepath"
	"testing"
)

// The syncer follows the blocks as they are created, and finds the last
// one when it starts on a stream that has several.
func TestStreamFilesFollowsNewBlocks(t *testing.T) {
	dir := t.TempDir()
	msgs := filepath.Join(dir, "msgs")
	if err := os.MkdirAll(msgs, 0o750); err != nil {
		t.Fatal(err)
	}
	s := NewStreamFiles(dir)
	defer s.Close()
	if err := s.Sync(); err != nil || s.fd != nil {
		t.Fatalf("no block yet: err %v, open %v", err, s.fd)
	}
	touch := func(n string) {
		if err := os.WriteFile(filepath.Join(msgs, n), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	touch("1.blk")
	touch("index.db")
	if err := s.Sync(); err != nil || s.blk != 1 {
		t.Fatalf("after 1.blk: err %v, block %d", err, s.blk)
	}
	touch("2.blk")
	touch("3.blk")
	if err := s.Sync(); err != nil || s.blk != 3 {
		t.Fatalf("after 2.blk and 3.blk: err %v, block %d", err, s.blk)
	}
	again := NewStreamFiles(dir)
	defer again.Close()
	if err := again.Sync(); err != nil || again.blk != 3 {
		t.Fatalf("a new syncer: err %v, block %d, want 3", err, again.blk)
	}
}
