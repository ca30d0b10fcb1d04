package lazyfs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/datamesh/datamesh/node/nodetest/lazyfs"
)

// mount mounts a lazy file system over a new backing dir, and returns it
// with the backing dir and the mount point.
func mount(t *testing.T) (*lazyfs.FS, string, string) {
	t.Helper()
	backing, mnt := t.TempDir(), t.TempDir()
	return lazyfs.MountTest(t, backing, mnt), backing, mnt
}

func writeFile(t *testing.T, path string, flags int, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync: %v", err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// wantContent asserts that path holds exactly want.
func wantContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes %.40q, want %d bytes %.40q", path, len(got), got, len(want), want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(want)) {
		t.Fatalf("%s: got size %d, want %d", path, st.Size(), len(want))
	}
}

// pattern is n bytes that differ from page to page.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

func TestWriteIsReadBackButNotInBacking(t *testing.T) {
	fs, backing, mnt := mount(t)
	data := pattern(10000, 1)
	writeFile(t, filepath.Join(mnt, "a"), 0, data, false)
	wantContent(t, filepath.Join(mnt, "a"), data)
	wantContent(t, filepath.Join(backing, "a"), nil) // created, data pending
	// A listing (READDIRPLUS: a lookup per entry) has the logical size too.
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := entries[0].Info(); err != nil || info.Size() != 10000 {
		t.Fatalf("listed %v: got size %v (%v), want 10000", entries, info, err)
	}
	if got := fs.Unsynced(); got != 10000 {
		t.Fatalf("got %d unsynced bytes, want 10000", got)
	}
}

func TestCrashDropsWhatWasNotFsynced(t *testing.T) {
	fs, backing, mnt := mount(t)
	writeFile(t, filepath.Join(mnt, "a"), 0, []byte("synced"), true)
	writeFile(t, filepath.Join(mnt, "a"), os.O_APPEND, []byte(" lost"), false)
	writeFile(t, filepath.Join(mnt, "b"), 0, []byte("lost too"), false)
	wantContent(t, filepath.Join(mnt, "a"), []byte("synced lost"))
	lost := fs.Crash()
	if len(lost) != 2 || lost["a"] != 5 || lost["b"] != 8 {
		t.Fatalf("got lost %v, want a:5 b:8", lost)
	}
	if got := fs.Unsynced(); got != 0 {
		t.Fatalf("got %d unsynced bytes after the crash, want 0", got)
	}
	if err := fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(backing, "a"), []byte("synced"))
	wantContent(t, filepath.Join(backing, "b"), nil)
	if err := os.WriteFile(filepath.Join(backing, "c"), nil, 0o644); err != nil {
		t.Fatal(err) // the backing dir is usable again
	}
}

func TestCrashKeepsFsyncedWritesAndFencesTheMount(t *testing.T) {
	fs, backing, mnt := mount(t)
	data := pattern(3*4096+100, 7)
	writeFile(t, filepath.Join(mnt, "a"), 0, data, true)
	fs.Crash()
	f, err := os.OpenFile(filepath.Join(mnt, "a"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("a write after the crash succeeded, want EIO")
	}
	f.Close()
	if err := fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(backing, "a"), data)
}

func TestOSyncWritesAreKept(t *testing.T) {
	for _, flag := range []int{os.O_SYNC, syscall.O_DSYNC} {
		fs, backing, mnt := mount(t)
		writeFile(t, filepath.Join(mnt, "a"), flag, []byte("at once"), false)
		if got := fs.Unsynced(); got != 0 {
			t.Fatalf("flag %#x: got %d unsynced bytes, want 0", flag, got)
		}
		fs.Crash()
		wantContent(t, filepath.Join(backing, "a"), []byte("at once"))
	}
}

func TestFsyncThroughAnotherHandle(t *testing.T) {
	fs, backing, mnt := mount(t)
	path := filepath.Join(mnt, "a")
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("written by w")); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path) // read-only: fsync still writes the inode back
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	fs.Crash()
	wantContent(t, filepath.Join(backing, "a"), []byte("written by w"))
}

func TestTruncateIsPendingUntilFsync(t *testing.T) {
	fs, backing, mnt := mount(t)
	path := filepath.Join(mnt, "a")
	data := pattern(10000, 3)
	writeFile(t, path, 0, data, true)
	if err := os.Truncate(path, 100); err != nil { // by path
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("end"), 8000); err != nil { // past a hole
		t.Fatal(err)
	}
	want := append(append(append([]byte(nil), data[:100]...), make([]byte, 7900)...), "end"...)
	wantContent(t, path, want)
	wantContent(t, filepath.Join(backing, "a"), data)
	if err := f.Truncate(5000); err != nil { // through a handle
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	wantContent(t, filepath.Join(backing, "a"), want[:5000])
}

func TestOTruncAndAppend(t *testing.T) {
	fs, backing, mnt := mount(t)
	path := filepath.Join(mnt, "a")
	writeFile(t, path, 0, []byte("old content"), true)
	writeFile(t, path, os.O_TRUNC, []byte("new"), false)
	writeFile(t, path, os.O_APPEND, []byte("+more"), false)
	wantContent(t, path, []byte("new+more"))
	wantContent(t, filepath.Join(backing, "a"), []byte("old content"))
	fs.Crash()
	wantContent(t, filepath.Join(backing, "a"), []byte("old content"))
}
