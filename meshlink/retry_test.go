package meshlink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/meshlink"
)

// A link that cannot reach its export retries with a bounded backoff and
// says why and how many attempts failed in its status; it imports once
// the export is there, and Close returns at once while it retries.
func TestMeshLinkRetriesVisibly(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendEvent("order", "o-1", "OrderPlaced", `{"total":10}`)
	m := f.start()
	// The link alone: the export it reads is not there yet.
	if err := m.Commit(ctx, nil, []*meshlink.Link{f.link}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	waitFor(t, "link retrying", func() error {
		l := linkStatus(m)
		if l.State != meshlink.LinkConnecting || l.Attempts < 2 || !strings.Contains(l.LastError, `no export "public"`) {
			return fmt.Errorf("got state %s, %d attempts, error %q", l.State, l.Attempts, l.LastError)
		}
		return nil
	})
	if err := m.Commit(ctx, []*meshlink.Export{f.export}, nil); err != nil {
		t.Fatalf("commit export: %v", err)
	}
	waitFor(t, "link importing", func() error {
		l := linkStatus(m)
		if l.State != meshlink.LinkImporting || l.Imported != 1 || l.Attempts != 0 || l.LastError != "" {
			return fmt.Errorf("got %+v", l)
		}
		return nil
	})

	link2 := *f.link
	link2.Name, link2.Export = "in2", "missing"
	if err := m.Commit(ctx, nil, []*meshlink.Link{&link2}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	waitFor(t, "second link retrying", func() error {
		for _, l := range m.Status().Links {
			if l.Name == "in2" && l.Attempts >= 1 {
				return nil
			}
		}
		return fmt.Errorf("got %+v", m.Status().Links)
	})
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s while a link retried")
	}
}
