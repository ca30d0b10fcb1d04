package node_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
)

// A log at max_log_bytes refuses appends with insufficient_storage (507)
// and stores nothing, single or batch; every event stored before stays,
// and a restart keeps the limit and the events.
func TestMaxLogBytesRefusesNewEvents(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxEventBytes = 1024
	cfg.MaxLogBytes = int64(eventlog.MaxMsgSize(cfg.MaxEventBytes)) // the smallest limit allowed
	n := startNode(t, cfg)
	c := newClient(t, n)
	data := fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", 900))

	var stored uint64
	var refused error
	for i := range 1000 {
		r, err := c.Append("note", fmt.Sprintf("n-%d", i), "Written", data, client.AppendOptions{ID: fmt.Sprintf("w-%d", i)})
		if err != nil {
			refused = err
			break
		}
		stored = r.Seq
	}
	if stored == 0 {
		t.Fatalf("no event fit under max_log_bytes %d: %v", cfg.MaxLogBytes, refused)
	}
	e := wantAPIError(t, refused, protocol.CodeInsufficientStorage)
	if e.Status != 507 || !strings.Contains(e.Message, "max_log_bytes") {
		t.Fatalf("got %+v, want status 507 and a message naming max_log_bytes", e)
	}
	t.Logf("%d events stored under %d bytes, then: %s", stored, cfg.MaxLogBytes, e.Message)

	// A batch is refused whole.
	_, err := c.AppendBatch("order", "o-1", orderEvents(3, "full"), nil)
	wantAPIError(t, err, protocol.CodeInsufficientStorage)
	wantStored := func(n *node.Node) {
		t.Helper()
		c := newClient(t, n)
		if got := len(readAll(t, c, "note", "")); uint64(got) != stored {
			t.Fatalf("got %d events, want the %d stored before the limit", got, stored)
		}
		if got := readAll(t, c, "order", "o-1"); len(got) != 0 {
			t.Fatalf("a refused batch stored %d events", len(got))
		}
	}
	wantStored(n)

	// Restarted with the same limit: still refused, nothing dropped.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, cfg)
	_, err = newClient(t, n).Append("note", "after", "Written", data, client.AppendOptions{})
	wantAPIError(t, err, protocol.CodeInsufficientStorage)
	wantStored(n)
}

// A limit smaller than one event is refused at start, with the reason.
func TestMaxLogBytesValidated(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxLogBytes = 1000
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_log_bytes 1000") {
		t.Fatalf("got %v, want max_log_bytes refused", err)
	}
	for _, v := range []int64{0, -1} {
		cfg.MaxLogBytes = v
		if err := cfg.Validate(); err != nil {
			t.Fatalf("max_log_bytes %d (unlimited): %v", v, err)
		}
	}
}
