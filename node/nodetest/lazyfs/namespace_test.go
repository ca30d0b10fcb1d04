package lazyfs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/nodetest/lazyfs"
)

func TestRenameKeepsPendingData(t *testing.T) {
	fs, backing, mnt := mount(t)
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mnt, "a.tmp"), 0, []byte("dirty"), false)
	writeFile(t, filepath.Join(mnt, "d", "b"), 0, []byte("replaced"), false)
	if err := os.Rename(filepath.Join(mnt, "a.tmp"), filepath.Join(mnt, "d", "b")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(mnt, "d", "b"), []byte("dirty"))
	// The rename is metadata: it is in the backing dir at once.
	wantContent(t, filepath.Join(backing, "d", "b"), nil)
	if _, err := os.Stat(filepath.Join(backing, "a.tmp")); !os.IsNotExist(err) {
		t.Fatalf("backing a.tmp: got %v, want not exist", err)
	}
	if got := fs.Unsynced(); got != 5 {
		t.Fatalf("got %d unsynced bytes, want 5 (the replaced file's are gone)", got)
	}
	f, err := os.Open(filepath.Join(mnt, "d", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fs.Crash()
	wantContent(t, filepath.Join(backing, "d", "b"), []byte("dirty"))
}

func TestUnlinkDropsPendingData(t *testing.T) {
	fs, _, mnt := mount(t)
	path := filepath.Join(mnt, "a")
	writeFile(t, path, 0, []byte("gone with the file"), false)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := fs.Unsynced(); got != 0 {
		t.Fatalf("got %d unsynced bytes, want 0", got)
	}
	writeFile(t, path, 0, nil, false) // may reuse the inode number
	wantContent(t, path, nil)
}

func TestUnmountWritesBack(t *testing.T) {
	backing, mnt := t.TempDir(), t.TempDir()
	fs := lazyfs.MountTest(t, backing, mnt)
	writeFile(t, filepath.Join(mnt, "a"), 0, []byte("clean shutdown"), false)
	if err := fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(backing, "a"), []byte("clean shutdown"))

	// A second mount over the same dir sees it.
	mnt2 := t.TempDir()
	lazyfs.MountTest(t, backing, mnt2)
	wantContent(t, filepath.Join(mnt2, "a"), []byte("clean shutdown"))
}

func TestUnmountWithAFileOpen(t *testing.T) {
	fs, backing, mnt := mount(t)
	f, err := os.Create(filepath.Join(mnt, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	done := make(chan error, 1)
	go func() { done <- fs.Unmount() }()
	// Detached at once: the mount point is a plain directory again.
	nodetest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if entries, err := os.ReadDir(mnt); err != nil || len(entries) > 0 {
			return fmt.Errorf("%s still lists %d entries (%v)", mnt, len(entries), err)
		}
		return nil
	})
	f.Close() // the kernel ends the mount with its last file
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Unmount did not return after the last file closed")
	}
	wantContent(t, filepath.Join(backing, "a"), nil)
}
