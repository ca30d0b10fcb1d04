package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/projection"
)

// TestBackupRestoreUnderLoad backs up two linked nodes while events are
// appended to the owner and imported by the reader, restores both backups
// into new directories and starts nodes on them: the restored owner holds
// the same events at the same seqs, rebuilds the same projection and
// resumes its export; the restored reader's link resumes from its
// checkpoint and imports every event exactly once.
func TestBackupRestoreUnderLoad(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing"))
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)
	applyOrders(t, oc)
	apply(t, oc, exportYAML("public-orders", "billing", "order", "OrderPlaced", ""))
	apply(t, bc, linkYAML("orders-in", "orders", orders.LeafURL(), "public-orders", ""))
	placeOrder(t, oc, "o-1", "c-1", 10)
	appendEvent(t, oc, "o-1", "ItemAdded", `{"sku":"s-1","price":5}`)
	appendEvent(t, oc, "o-1", "OrderShipped", `{"carrier":"ups"}`)
	placeOrder(t, oc, "o-2", "c-2", 20)
	appendEvent(t, oc, "o-2", "OrderCancelled", `{}`)

	load := startLoad(t, oc)
	waitCategory(t, bc, "order", 30) // the link imports while the load runs
	before := load.count.Load()
	// Each backup is held after its first stream's snapshot until the
	// streams that follow have changed in a way that would break a backup
	// taken in another order: the owner's export copies more events, the
	// reader's link stores new checkpoints past what its log held.
	ownerFile, ownerEnd := takeBackup(t, oc, func() {
		from := exportStatus(oc).StreamSeq
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if st := exportStatus(oc); st.StreamSeq <= from {
				return fmt.Errorf("export stream at %d, want past %d", st.StreamSeq, from)
			}
			return nil
		})
	})
	checkpoints := checkpointRevision(t, billing, "orders-in")
	readerFile, readerEnd := takeBackup(t, bc, func() {
		// The second checkpoint stored after the hold covers events
		// appended after it.
		for range 2 {
			from := checkpoints()
			checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				if r := checkpoints(); r <= from {
					return fmt.Errorf("checkpoint at revision %d, want past %d", r, from)
				}
				return nil
			})
		}
	})
	if after := load.count.Load(); after == before {
		t.Fatalf("no event was appended during the backups (%d before and after): not a backup under load", after)
	}
	load.stop()
	for _, end := range []*protocol.BackupEnd{ownerEnd, readerEnd} {
		if s := end.Streams; s[0].Stream != "KV_datamesh_links" || s[1].Stream != "KV_datamesh_registry" || s[len(s)-1].Stream != "EVENTS" {
			t.Fatalf("backup streams in the order %+v, want links, registry, exports, log", s)
		}
	}

	t.Run("owner", func(t *testing.T) { checkRestoredOwner(t, orders, oc, ownerFile, ownerEnd) })
	t.Run("reader", func(t *testing.T) { checkRestoredReader(t, oc, billing, bc, readerFile, readerEnd) })
}

// load appends orders from four goroutines (so group commit writes
// batches of several events) until stopped.
type load struct {
	count atomic.Int64
	stop  func()
}

func startLoad(t *testing.T, c *client.Client) *load {
	t.Helper()
	l := &load{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				data := fmt.Appendf(nil, `{"customer":"c-%d","total":%d}`, g, i)
				if _, err := c.Append("order", fmt.Sprintf("l-%d-%d", g, i), "OrderPlaced", data, client.AppendOptions{}); err != nil {
					t.Errorf("load: %v", err)
					return
				}
				l.count.Add(1)
			}
		}()
	}
	var once sync.Once
	l.stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(l.stop)
	return l
}

// takeBackup backs the node up into a file and returns it with the end
// message. It calls hold when the first stream's record arrives, and
// acknowledges nothing until hold returns: with 1 KiB chunks and a window
// of one, the node is then just past its first snapshot.
func takeBackup(t *testing.T, c *client.Client, hold func()) (string, *protocol.BackupEnd) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "node.dmbackup")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end, err := c.Backup(ctx, &holdWriter{w: f, hold: hold}, client.BackupOptions{ChunkSize: 1024, Window: 1})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return file, end
}

// checkpointRevision returns a func that reads the revision of link's
// checkpoint in n's links bucket, as any service may.
func checkpointRevision(t *testing.T, n *node.Node, link string) func() uint64 {
	js, err := jetstream.New(dial(t, n))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, registry.LinksBucket)
	if err != nil {
		t.Fatal(err)
	}
	return func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e, err := kv.Get(ctx, "checkpoint."+link)
		if err != nil {
			return 0
		}
		return e.Revision()
	}
}

type holdWriter struct {
	w    io.Writer
	hold func()
	held bool
}

func (h *holdWriter) Write(p []byte) (int, error) {
	if !h.held && bytes.Contains(p, []byte("/stream.json")) {
		h.held = true
		h.hold()
	}
	return h.w.Write(p)
}

// restoreNode restores file into a new directory and starts a node on it
// with cfg's name and peers.
func restoreNode(t *testing.T, cfg node.Config, file string, end *protocol.BackupEnd) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg.DataDir = filepath.Join(t.TempDir(), "restored")
	res, err := backup.Restore(ctx, file, cfg.DataDir, backup.RestoreOptions{SHA256: end.SHA256}, testLogger(t))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.Manifest.Node != cfg.Name || len(res.Streams) != len(end.Streams) {
		t.Fatalf("restored node %s with %d streams, want %s with %d", res.Manifest.Node, len(res.Streams), cfg.Name, len(end.Streams))
	}
	return startNode(t, cfg)
}

func streamOf(t *testing.T, end *protocol.BackupEnd, account, stream string) protocol.BackupStream {
	t.Helper()
	for _, s := range end.Streams {
		if s.Account == account && s.Stream == stream {
			return s
		}
	}
	t.Fatalf("backup has no stream %s in account %s: %+v", stream, account, end.Streams)
	return protocol.BackupStream{}
}

func checkRestoredOwner(t *testing.T, orders *node.Node, oc *client.Client, file string, end *protocol.BackupEnd) {
	want, err := readCategory(oc, "order")
	if err != nil {
		t.Fatal(err)
	}
	last := streamOf(t, end, "$G", "EVENTS").LastSeq
	exported := streamOf(t, end, "EXP_billing", "EXPORT_public-orders")
	if last == 0 || last >= uint64(len(want)) || exported.LastSeq == 0 {
		t.Fatalf("backup at log seq %d (export %d) of %d events: want a backup in the middle of the load", last, exported.LastSeq, len(want))
	}
	// The export stream holds no copy of an event the backup's log lacks.
	placed := 0
	for _, ev := range want[:last] {
		if ev.Type == "OrderPlaced" {
			placed++
		}
	}
	if exported.Messages > uint64(placed) {
		t.Fatalf("the backup's export stream holds %d copies, its log %d exported events", exported.Messages, placed)
	}
	restored := restoreNode(t, meshConfig(t, "orders", "billing"), file, end)
	rc := newClient(t, restored)

	// Same events at the same seqs, up to the backup's last seq.
	got, err := readCategory(rc, "order")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want[:last]) {
		t.Fatalf("restored log: %d events, want the first %d of the owner's", len(got), last)
	}
	// Append what the owner stored after the backup, as it stored it: the
	// two logs are then equal, and so must their projections and exports be.
	for _, ev := range want[last:] {
		r, err := rc.Append(ev.Aggregate, ev.AggregateID, ev.Type, ev.Data,
			client.AppendOptions{ID: ev.ID, Source: ev.Source, Time: ev.Time})
		if err != nil || r.Seq != ev.Seq {
			t.Fatalf("append event %d again: got seq %+v, %v", ev.Seq, r, err)
		}
	}
	head := want[len(want)-1].Seq
	if a, b := allDocs(t, oc, head), allDocs(t, rc, head); !reflect.DeepEqual(a, b) || len(a) < int(last) {
		t.Fatalf("projection orders: restored node has %d documents, owner %d (want equal, at least %d)", len(b), len(a), last)
	}
	for _, key := range []string{"o-1", "l-0-0"} {
		a, b := query(t, oc, "orders", projection.Query{History: &key, MinSeq: head}), query(t, rc, "orders", projection.Query{History: &key, MinSeq: head})
		if !reflect.DeepEqual(a.History, b.History) || len(a.History) == 0 {
			t.Fatalf("history of %s: restored %+v, owner %+v", key, b.History, a.History)
		}
	}
	// The export resumes after its last copy: it ends with one copy per
	// exported event, as the owner's.
	checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		a, b := exportStatus(oc), exportStatus(rc)
		if a.StreamSeq == 0 || a.StreamSeq != b.StreamSeq || a.ExportedSeq != head || b.ExportedSeq != head {
			return fmt.Errorf("export: restored %+v, owner %+v (log head %d)", b, a, head)
		}
		return nil
	})
}

func exportStatus(c *client.Client) protocol.ExportStatus {
	st, err := c.Mesh()
	if err != nil || len(st.Exports) != 1 {
		return protocol.ExportStatus{}
	}
	return st.Exports[0]
}

// allDocs lists every document of the projection orders once it has
// applied minSeq.
func allDocs(t *testing.T, c *client.Client, minSeq uint64) []projection.Doc {
	t.Helper()
	var docs []projection.Doc
	f := &projection.Filter{Limit: 500}
	for {
		r := query(t, c, "orders", projection.Query{List: f, MinSeq: minSeq, TimeoutMS: 20000})
		docs = append(docs, r.Docs...)
		if r.Next == nil || *r.Next == "" {
			return docs
		}
		f.After = *r.Next
	}
}

func checkRestoredReader(t *testing.T, oc *client.Client, billing *node.Node, bc *client.Client, file string, end *protocol.BackupEnd) {
	last := streamOf(t, end, "$G", "EVENTS").LastSeq
	if streamOf(t, end, "$G", "KV_datamesh_links").Messages == 0 {
		t.Fatal("the reader's backup holds no link checkpoint")
	}
	before, err := readCategory(bc, "order")
	if err != nil {
		t.Fatal(err)
	}
	billing.Close() // the restored node takes its place in the mesh
	restored := restoreNode(t, meshConfig(t, "billing", "orders"), file, end)
	rc := newClient(t, restored)
	got, err := readCategory(rc, "order")
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(got)) < last || !reflect.DeepEqual(got[:last], before[:last]) {
		t.Fatalf("restored reader's log: %d events, want the first %d of the reader's", len(got), last)
	}
	// Everything the owner exported arrives, once.
	placed := 0
	evs, err := readCategory(oc, "order")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == "OrderPlaced" {
			placed++
		}
	}
	checkExactlyOnce(t, waitCategory(t, rc, "order", placed), placed)
}

// TestBackupProtocol speaks dm.admin.backup with a plain NATS client: a
// window of one chunk left unacknowledged holds the backup (and a second
// one is refused meanwhile); acknowledging every chunk brings the end
// message, whose size and SHA-256 are those of the bytes received.
func TestBackupProtocol(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	for i := range 200 {
		placeOrder(t, c, fmt.Sprintf("o-%d", i), "c", float64(i))
	}
	nc := dial(t, n)
	resp := request(t, nc, protocol.SubjectBackup, nil, `{"chunk_size": 10}`)
	wantErrorReply(t, resp, "400", protocol.CodeBadRequest)

	inbox := nc.NewInbox()
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	req := nats.NewMsg(protocol.SubjectBackup)
	req.Reply, req.Data = inbox, []byte(`{"chunk_size": 1024, "window": 1}`)
	if err := nc.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	begin := receive(t, msgs)
	var b protocol.BackupBegin
	if begin.Header.Get(protocol.HeaderBackup) != protocol.BackupMsgBegin || json.Unmarshal(begin.Data, &b) != nil ||
		b.Node != "test" || b.Window != 1 || b.ChunkSize != 1024 || len(b.Streams) != 3 {
		t.Fatalf("first message: %v %s", begin.Header, begin.Data)
	}
	first := receive(t, msgs)
	if first.Header.Get(protocol.HeaderBackupSeq) != "1" || len(first.Data) != 1024 || first.Reply == "" {
		t.Fatalf("first chunk: %v, %d bytes, reply %q", first.Header, len(first.Data), first.Reply)
	}
	// Unacknowledged, chunk 1 holds the backup; another is refused.
	wantErrorReply(t, request(t, nc, protocol.SubjectBackup, nil, ""), "409", protocol.CodeConflict)
	select {
	case m := <-msgs:
		t.Fatalf("chunk %s sent before chunk 1 was acknowledged", m.Header.Get(protocol.HeaderBackupSeq))
	default:
	}
	file := append([]byte{}, first.Data...)
	if err := first.Respond(nil); err != nil {
		t.Fatal(err)
	}
	var end protocol.BackupEnd
	for m := receive(t, msgs); ; m = receive(t, msgs) {
		if m.Header.Get(protocol.HeaderBackup) == protocol.BackupMsgEnd {
			if err := json.Unmarshal(m.Data, &end); err != nil {
				t.Fatal(err)
			}
			break
		}
		file = append(file, m.Data...)
		if err := m.Respond(nil); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(file)
	if end.Size != int64(len(file)) || end.SHA256 != hex.EncodeToString(sum[:]) || end.Chunks != uint64((len(file)+1023)/1024) {
		t.Fatalf("end %+v; received %d bytes, sha256 %x", end, len(file), sum)
	}
	if s := end.Streams[2]; s.Stream != "EVENTS" || s.LastSeq != 200 || s.Messages != 200 {
		t.Fatalf("log in the backup: %+v", s)
	}
	// The turn is free again.
	if _, err := c.Backup(context.Background(), io.Discard, client.BackupOptions{}); err != nil {
		t.Fatalf("backup after the first: %v", err)
	}
}

// TestBackupStopsAtClose closes a node while a backup waits for its client:
// the client gets an unavailable error, and Close does not wait for it.
func TestBackupStopsAtClose(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	for i := range 50 {
		placeOrder(t, c, fmt.Sprintf("o-%d", i), "c", 1)
	}
	nc := dial(t, n)
	inbox := nc.NewInbox()
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	req := nats.NewMsg(protocol.SubjectBackup)
	req.Reply, req.Data = inbox, []byte(`{"chunk_size": 1024, "window": 1}`)
	if err := nc.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	receive(t, msgs) // begin
	if m := receive(t, msgs); m.Header.Get(protocol.HeaderBackup) != protocol.BackupMsgChunk {
		t.Fatalf("second message: %v", m.Header)
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close waits for the backup's client")
	}
	wantErrorReply(t, receive(t, msgs), "503", protocol.CodeUnavailable)
}
