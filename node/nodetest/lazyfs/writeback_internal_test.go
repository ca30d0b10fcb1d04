package lazyfs

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// newTestInode is an inode over a new empty file, dirty, with mu held.
func newTestInode(t *testing.T) (*inode, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	in := newInode(new(atomic.Bool), func() string { return "f" })
	t.Cleanup(func() {
		if in.fd != nil {
			in.fd.Close()
		}
	})
	in.mu.Lock()
	if err := in.begin(func() (*os.File, error) { return os.OpenFile(path, os.O_RDWR, 0) }); err != nil {
		t.Fatal(err)
	}
	return in, path
}

// writeBackWith runs a write-back of in as sync does, with during run
// (mu held) after the snapshot and before the I/O. It returns with mu held.
func writeBackWith(t *testing.T, in *inode, during func()) {
	t.Helper()
	wb := in.snapshot()
	in.lowSize = wb.size
	during()
	in.mu.Unlock()
	if err := wb.write(); err != nil {
		t.Fatal(err)
	}
	in.mu.Lock()
	low := in.lowSize
	in.lowSize = -1
	in.settle(wb, low)
}

func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("backing file: got %d bytes %q, want %d bytes %q", len(got), got, len(want), want)
	}
}

func TestWritesDuringAWriteBackStayDirty(t *testing.T) {
	in, path := newTestInode(t)
	in.writeAt([]byte("first"), 0)
	writeBackWith(t, in, func() {
		in.writeAt([]byte("F"), 0)                // a page being written
		in.writeAt([]byte("third"), 2*pageSize+1) // a new page
	})
	wantFile(t, path, []byte("first"))
	if !in.dirty || len(in.pages) != 2 || in.written != 6 || in.backSize != 5 {
		t.Fatalf("got dirty %v, %d pages, %d written, backing size %d; want dirty, 2 pages, 6 written, 5",
			in.dirty, len(in.pages), in.written, in.backSize)
	}
	want := append(append([]byte("First"), make([]byte, 2*pageSize+1-5)...), "third"...)
	got := make([]byte, len(want)+10)
	n, err := in.readAt(got, 0, int(in.fd.Fd()))
	if err != nil || !bytes.Equal(got[:n], want) {
		t.Fatalf("read %d bytes %q (%v), want %q", n, got[:n], err, want)
	}
	in.mu.Unlock()
	if err := in.sync(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, want)
	if in.dirty {
		t.Fatal("still dirty after a sync with no write during it")
	}
}

func TestTruncateDuringAWriteBackIsKept(t *testing.T) {
	in, path := newTestInode(t)
	data := bytes.Repeat([]byte("x"), 10000)
	in.writeAt(data, 0)
	writeBackWith(t, in, func() { in.truncate(100) })
	wantFile(t, path, data)
	if !in.dirty || in.backSize != 100 || in.size != 100 {
		t.Fatalf("got dirty %v, backing size %d, size %d; want dirty, 100, 100", in.dirty, in.backSize, in.size)
	}
	in.mu.Unlock()
	if err := in.sync(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, data[:100])
}
