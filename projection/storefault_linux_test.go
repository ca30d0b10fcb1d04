//go:build linux

package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/datamesh/datamesh/projection"
)

// diskFull makes the writes of the open file at path fail with ENOSPC, as
// a full disk does (root ignores permissions: a read-only file would not
// fail): it puts /dev/full under the file's descriptor. The returned func
// puts the file back.
func diskFull(t *testing.T, path string) (restore func()) {
	t.Helper()
	fd := openFD(t, path)
	saved, err := syscall.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	if err := syscall.Dup3(int(full.Fd()), fd, 0); err != nil {
		t.Fatal(err)
	}
	var once bool
	restore = func() {
		if once {
			return
		}
		once = true
		if err := syscall.Dup3(saved, fd, 0); err != nil {
			t.Fatal(err)
		}
		syscall.Close(saved)
	}
	t.Cleanup(restore)
	return restore
}

// openFD finds this process's descriptor of the file at path.
func openFD(t *testing.T, path string) int {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == abs {
			var fd int
			fmt.Sscan(e.Name(), &fd)
			return fd
		}
	}
	t.Fatalf("%s is not open", abs)
	return -1
}

// A projection whose file cannot be written (disk full) stops alone, says
// why in its status, and resumes from its checkpoint once it can write
// again: no event is lost or applied twice.
func TestProjectionStoreFullResumes(t *testing.T) {
	l := startLog(t)
	l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	dir := t.TempDir()
	store := newMemStore()
	m := startManager(t, l.managerConfig(t, dir, store))
	apply(t, m, specVersion(t, 1, ""), specVersion(t, 2, ""))
	waitState(t, m, "orders", 1, projection.StateLive)
	waitState(t, m, "orders", 2, projection.StateLive)

	restore := diskFull(t, filepath.Join(dir, "projections", "orders", "v1.db"))
	seq := l.append(t, "o-1", "ItemAdded", `{"sku":"b","price":2}`)
	st := waitStatus(t, m, func(st projection.Status) error {
		if st.State != projection.StateRetrying || !strings.Contains(st.LastError, "no space left on device") {
			return fmt.Errorf("got %s (%q), want retrying with the disk full", st.State, st.LastError)
		}
		return nil
	})
	t.Logf("disk full: %s, attempt %d: %s", st.State, st.Attempts, st.LastError)
	if st.Applied >= seq {
		t.Fatalf("applied %d while its file could not be written", st.Applied)
	}
	// The other version goes on.
	checkFor(t, 10*time.Second, func() error {
		w, _, err := m.Worker("orders", 2)
		if err != nil {
			return err
		}
		if got := w.Status(0); got.State != projection.StateLive || got.Applied != seq {
			return fmt.Errorf("v2: got %s at %d, want live at %d", got.State, got.Applied, seq)
		}
		return nil
	})

	restore() // space again: it resumes by itself
	waitStatus(t, m, func(st projection.Status) error {
		if st.State != projection.StateLive || st.Applied != seq || st.LastError != "" {
			return fmt.Errorf("got %s at %d (%q), want live at %d", st.State, st.Applied, st.LastError, seq)
		}
		return nil
	})
	wantTotal(t, m, 5)

	// What it wrote is on disk: a restart reads it back.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = startManager(t, l.managerConfig(t, dir, store))
	waitState(t, m, "orders", 1, projection.StateLive)
	wantTotal(t, m, 5)
}

func wantTotal(t *testing.T, m *projection.Manager, want float64) {
	t.Helper()
	w, _, err := m.Worker("orders", 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Query(context.Background(), &projection.Query{Get: ptrTo("o-1")})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(res.Doc, &doc); err != nil || doc["total"] != want {
		t.Fatalf("got document %s (%v), want total %v", res.Doc, err, want)
	}
}
