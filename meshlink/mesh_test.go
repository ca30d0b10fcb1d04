package meshlink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/eventlog"
)

const leafURL = "nats-leaf://127.0.0.1:7422"

// fixture is a node "orders" that exports its orders to itself and links
// to that export with a Go transformer.
type fixture struct {
	t      *testing.T
	log    *eventlog.Log
	js     jetstream.JetStream
	deps   meshlink.Deps
	store  *memStore
	leafs  *leafnodes
	cfg    meshlink.Config
	export *meshlink.Export
	link   *meshlink.Link
	// allowBad lets the transformer pass orders marked bad, allowRefuse
	// those the contract refuses.
	allowBad, allowRefuse atomic.Bool
}

func newFixture(t *testing.T) *fixture {
	srv := startServer(t, "orders")
	l, nc := testLog(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, log: l, js: js, store: newMemStore(), leafs: &leafnodes{}}
	f.deps = meshlink.Deps{Log: l, Dialer: dialer{srv}, Leafnodes: f.leafs, Store: f.store, Contracts: contracts{}}
	tr := meshlink.TransformFunc(func(in meshlink.Event) (meshlink.Event, bool, error) {
		d := in.Data.(map[string]any)
		switch {
		case d["total"] == 0.0:
			return in, false, nil
		case d["bad"] == true && !f.allowBad.Load():
			return in, false, errors.New("bad order")
		case d["refuse"] == true && !f.allowRefuse.Load():
			in.Type = "Refused"
			return in, true, nil
		}
		in.Type, in.ID = "OrderCopied", "copy-"+in.ID
		return in, true, nil
	})
	f.cfg = meshlink.Config{Node: "orders", Peers: []string{"orders"}, MaxEventBytes: 1 << 16,
		Transforms: map[string]meshlink.Transformer{"in": tr}}
	f.export = &meshlink.Export{Kind: meshlink.KindExport, Name: "public", To: []string{"orders"},
		Aggregates: []string{"order"}, Redact: []string{"card"}}
	f.link = &meshlink.Link{Kind: meshlink.KindLink, Name: "in", Peer: "orders", URL: leafURL, Export: "public"}
	return f
}

// start starts a mesh, closed at the end of the test.
func (f *fixture) start() *meshlink.Mesh {
	f.t.Helper()
	m := meshlink.New(f.cfg, f.deps, testLogger(f.t))
	f.t.Cleanup(func() { m.Close() })
	if err := m.Start(context.Background()); err != nil {
		f.t.Fatalf("start: %v", err)
	}
	return m
}

// appendEvent stores an event in the log and returns its seq.
func (f *fixture) appendEvent(aggregate, id, typ, data string) uint64 {
	f.t.Helper()
	m, err := f.log.Prepare(aggregate, id, &eventlog.Draft{Type: typ, Data: []byte(data)})
	if err != nil {
		f.t.Fatalf("prepare: %v", err)
	}
	ack, err := f.js.PublishMsg(context.Background(), m)
	if err != nil {
		f.t.Fatalf("append: %v", err)
	}
	return ack.Sequence
}

// imported returns the events the link appended, by origin seq.
func (f *fixture) imported() map[uint64]eventlog.Record {
	f.t.Helper()
	recs, _, err := f.log.Read(context.Background(), "evt.>", 1, 1000)
	if err != nil {
		f.t.Fatalf("read: %v", err)
	}
	out := map[uint64]eventlog.Record{}
	for _, r := range recs {
		if r.Header.Get(eventlog.HeaderLink) != "in" {
			continue
		}
		var seq uint64
		fmt.Sscan(r.Header.Get(eventlog.HeaderOriginSeq), &seq)
		if _, dup := out[seq]; dup {
			f.t.Fatalf("origin seq %d imported twice", seq)
		}
		out[seq] = r
	}
	return out
}

func linkStatus(m *meshlink.Mesh) meshlink.LinkStatus {
	for _, l := range m.Status().Links {
		if l.Name == "in" {
			return l
		}
	}
	return meshlink.LinkStatus{}
}

func TestMeshExportLinkReplay(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendEvent("order", "o-1", "OrderPlaced", `{"total":10,"card":"4111"}`) // export seq 1, imported
	f.appendEvent("customer", "c-1", "CustomerAdded", `{}`)                    // not exported
	f.appendEvent("order", "o-2", "OrderPlaced", `{"total":0}`)                // export seq 2, filtered
	f.appendEvent("order", "o-3", "OrderPlaced", `{"total":5,"bad":true}`)     // export seq 3, transform error
	f.appendEvent("order", "o-4", "OrderPlaced", `{"total":5,"refuse":true}`)  // export seq 4, contract refuses
	m := f.start()

	applied, err := m.Check([]*meshlink.Export{f.export}, []*meshlink.Link{f.link})
	want := []meshlink.Applied{{Kind: "Export", Name: "public", Status: "created"}, {Kind: "Link", Name: "in", Status: "created"}}
	if err != nil || !reflect.DeepEqual(applied, want) {
		t.Fatalf("check: got %v, %v, want %v", applied, err, want)
	}
	if err := m.Commit(ctx, []*meshlink.Export{f.export}, []*meshlink.Link{f.link}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if remotes, _ := f.leafs.get(); !reflect.DeepEqual(remotes, map[string]string{"orders": leafURL}) {
		t.Fatalf("remotes: got %v", remotes)
	}
	waitFor(t, "link caught up", func() error {
		l := linkStatus(m)
		if l.State != meshlink.LinkImporting || l.ExportSeq != 4 || l.Imported != 1 || l.Filtered != 1 || l.DeadLetters != 2 {
			return fmt.Errorf("got %+v", l)
		}
		return nil
	})
	// The imported event is exported no further: its path holds this node.
	waitFor(t, "export saw the imported event", func() error {
		st := m.Status()
		if len(st.Exports) != 1 || st.Exports[0].ExportedSeq < 6 {
			return fmt.Errorf("got %+v", st.Exports)
		}
		if st.Exports[0].StreamSeq != 4 {
			t.Fatalf("export stream seq: got %d, want 4 (the imported event exported again?)", st.Exports[0].StreamSeq)
		}
		return nil
	})

	got := f.imported()
	r, ok := got[1]
	if len(got) != 1 || !ok {
		t.Fatalf("imported: got %v, want origin seq 1 only", got)
	}
	for h, v := range map[string]string{eventlog.HeaderID: "in:1", eventlog.HeaderLinkSeq: "1", eventlog.HeaderOriginNode: "orders",
		eventlog.HeaderMeshPath: "orders"} {
		if r.Header.Get(h) != v {
			t.Errorf("imported %s: got %q, want %q", h, r.Header.Get(h), v)
		}
	}
	if r.Subject != "evt.order.copy-o-1.OrderCopied" || string(r.Data) != `{"total":10}` {
		t.Errorf("imported: got %s %s, want evt.order.copy-o-1.OrderCopied {\"total\":10} (card redacted)", r.Subject, r.Data)
	}

	wantCatalog := []meshlink.PeerCatalog{{Node: "orders", Exports: []meshlink.ExportCatalog{{Name: "public",
		Aggregates: []string{"order"}, Redact: []string{"card"}, Stream: "EXPORT_public",
		EventTypes: contracts{}.EventTypes()[:1]}}}}
	if pc := m.PeerCatalogs(); !reflect.DeepEqual(pc, wantCatalog) {
		t.Errorf("peer catalogs: got %+v, want %+v", pc, wantCatalog)
	}

	testDeadLetters(t, f, m)
}

func testDeadLetters(t *testing.T, f *fixture, m *meshlink.Mesh) {
	ctx := context.Background()
	page, next, err := m.DeadLetters(ctx, "in", 0, 1)
	if err != nil || len(page) != 1 || page[0].ExportSeq != 3 || page[0].ID != "o-3" || page[0].Error != "bad order" || next != 3 {
		t.Fatalf("dead letters page 1: got %+v, next %d, %v", page, next, err)
	}
	page, next, err = m.DeadLetters(ctx, "in", next, 1)
	if err != nil || len(page) != 1 || page[0].ExportSeq != 4 || next != 0 ||
		!strings.Contains(page[0].Error, "data does not satisfy contract order.Refused") {
		t.Fatalf("dead letters page 2: got %+v, next %d, %v", page, next, err)
	}

	f.allowBad.Store(true)
	r, err := m.Replay(ctx, "in", nil)
	if err != nil || !reflect.DeepEqual(r.Replayed, []uint64{3}) || len(r.Filtered) != 0 || len(r.Failed) != 1 ||
		r.Failed[0].ExportSeq != 4 || r.Failed[0].Data != nil || r.More {
		t.Fatalf("replay: got %+v, %v", r, err)
	}
	if _, ok := f.imported()[4]; !ok {
		t.Fatalf("replay: origin seq 4 (o-3) not in the log")
	}
	if l := linkStatus(m); l.DeadLetters != 1 {
		t.Fatalf("dead letters after replay: got %d, want 1", l.DeadLetters)
	}
	_, err = m.Replay(ctx, "in", []uint64{4, 99})
	if !errors.Is(err, meshlink.ErrNotFound) || err.Error() != "link in has no dead letter at export seq [99]" {
		t.Fatalf("replay of a missing dead letter: got %v", err)
	}
	testReplayStatus(t, f, m)
}

// testReplayStatus checks that a replay shows in the link's status: the
// events it appends count as imported, and the last error goes once the
// dead letter it tells of is replayed.
func testReplayStatus(t *testing.T, f *fixture, m *meshlink.Mesh) {
	ctx := context.Background()
	// Export seq 4 still stands: its error stays.
	if l := linkStatus(m); l.Imported != 2 || l.DeadLetters != 1 || !strings.HasPrefix(l.LastError, "export seq 4 dead-lettered: ") {
		t.Fatalf("status after replaying export seq 3: got %+v, want imported 2, 1 dead letter, export seq 4's error", l)
	}
	f.allowBad.Store(false)
	f.appendEvent("order", "o-5", "OrderPlaced", `{"total":5,"bad":true}`) // export seq 5, transform error
	waitFor(t, "export seq 5 dead-lettered", func() error {
		if l := linkStatus(m); l.ExportSeq != 5 || l.DeadLetters != 2 || l.LastError != "export seq 5 dead-lettered: bad order" {
			return fmt.Errorf("got %+v", l)
		}
		return nil
	})
	f.allowBad.Store(true)
	if r, err := m.Replay(ctx, "in", []uint64{5}); err != nil || !reflect.DeepEqual(r.Replayed, []uint64{5}) {
		t.Fatalf("replay of export seq 5: got %+v, %v", r, err)
	}
	if l := linkStatus(m); l.Imported != 3 || l.DeadLetters != 1 || l.LastError != "" {
		t.Fatalf("status after replaying the dead letter its error told of: got %+v, want imported 3, 1 dead letter, no error", l)
	}
	f.allowRefuse.Store(true)
	if r, err := m.Replay(ctx, "in", nil); err != nil || !reflect.DeepEqual(r.Replayed, []uint64{4}) {
		t.Fatalf("replay of export seq 4: got %+v, %v", r, err)
	}
	if l := linkStatus(m); l.Imported != 4 || l.DeadLetters != 0 || l.LastError != "" {
		t.Fatalf("status after replaying every dead letter: got %+v, want imported 4, no dead letter, no error", l)
	}
}

// An imported event the log refuses while it stores later events of the
// same pipelined batch is written again alone, and, refused again, becomes
// a dead letter: resuming after the later ones must not lose it silently.
func TestMeshImportRefusedInTheMiddleBecomesADeadLetter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// The log refuses a second message on a subject (a limit a stream of
	// this node never has, set here to make the log refuse one event).
	st, err := f.js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgsPerSubject, cfg.DiscardNewPerSubject = 1, true
	if _, err := f.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	f.appendEvent("order", "copy-o-2", "OrderCopied", `{}`) // what o-2's import collides with
	for i := 1; i <= 6; i++ {
		f.appendEvent("order", fmt.Sprintf("o-%d", i), "OrderPlaced", `{"total":1}`)
	}
	m := f.start()
	if err := m.Commit(ctx, []*meshlink.Export{f.export}, []*meshlink.Link{f.link}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	waitFor(t, "link caught up", func() error {
		if l := linkStatus(m); l.ExportSeq != 7 || l.Imported != 6 || l.DeadLetters != 1 {
			return fmt.Errorf("got %+v", l)
		}
		return nil
	})
	got := f.imported()
	for _, seq := range []uint64{1, 2, 4, 5, 6, 7} { // origin seqs: copy-o-2 is 1, o-2 is 3
		if _, ok := got[seq]; !ok {
			t.Errorf("origin seq %d not imported", seq)
		}
	}
	page, _, err := m.DeadLetters(ctx, "in", 0, 10)
	if err != nil || len(page) != 1 || page[0].ID != "o-2" || !strings.Contains(page[0].Error, "the log refused the imported event") {
		t.Fatalf("dead letters: got %+v, %v", page, err)
	}
}

func TestMeshRecoversAfterACrash(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendEvent("order", "o-1", "OrderPlaced", `{"total":10}`)
	f.appendEvent("order", "o-2", "OrderPlaced", `{"total":0}`)
	m := f.start()
	if err := m.Commit(ctx, []*meshlink.Export{f.export}, []*meshlink.Link{f.link}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	waitFor(t, "link caught up", func() error {
		if l := linkStatus(m); l.ExportSeq != 2 || l.Imported != 1 {
			return fmt.Errorf("got %+v", l)
		}
		return nil
	})
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close again: %v", err)
	}
	if err := m.Retry("in"); !errors.Is(err, meshlink.ErrUnavailable) {
		t.Fatalf("retry after close: got %v, want ErrUnavailable", err)
	}

	// A crash between the append and the checkpoint: the stored
	// checkpoint is behind the log. And a copy no export grants.
	f.store.PutCheckpoint(ctx, "in", meshlink.Checkpoint{Started: true})
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EXPORT_stale", Subjects: []string{"export.stale.>"}}); err != nil {
		t.Fatal(err)
	}
	m = f.start()
	if _, err := f.js.Stream(ctx, "EXPORT_stale"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stale export copy: got %v, want it swept at start", err)
	}
	waitFor(t, "link recovered", func() error {
		if l := linkStatus(m); l.ExportSeq != 2 || l.State != meshlink.LinkImporting {
			return fmt.Errorf("got %+v", l)
		}
		return nil
	})
	// Recovery finds o-1 in the log: nothing is appended again; o-2, which
	// the filter dropped after it, is read and dropped again.
	if l := linkStatus(m); l.Imported != 0 || l.Filtered != 1 {
		t.Fatalf("recovery: got %+v, want 0 imported again, 1 filtered again", l)
	}
	f.appendEvent("order", "o-3", "OrderPlaced", `{"total":3}`)
	waitFor(t, "new event imported", func() error {
		if l := linkStatus(m); l.Imported != 1 || l.ExportSeq != 3 {
			return fmt.Errorf("got %+v", l)
		}
		return nil
	})
	if got := f.imported(); len(got) != 2 {
		t.Fatalf("imported: got %d events, want 2 (each once)", len(got))
	}
	testDelete(t, f, m)
}

func testDelete(t *testing.T, f *fixture, m *meshlink.Mesh) {
	ctx := context.Background()
	if err := m.DeleteLink(ctx, "in"); err != nil {
		t.Fatalf("delete link: %v", err)
	}
	if remotes, _ := f.leafs.get(); len(remotes) != 0 {
		t.Fatalf("remotes after delete: got %v, want none", remotes)
	}
	// The checkpoint stays (written at most every 250 ms, it may be behind).
	if cp, _ := f.store.Checkpoint(ctx, "in"); !cp.Started || cp.ExportSeq < 2 {
		t.Fatalf("checkpoint after delete: got %+v, want it kept", cp)
	}
	if err := m.DeleteExport(ctx, "public"); err != nil {
		t.Fatalf("delete export: %v", err)
	}
	if _, err := f.js.Stream(ctx, "EXPORT_public"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("export stream after delete: got %v, want it deleted", err)
	}
	if st := m.Status(); len(st.Links) != 0 || len(st.Exports) != 0 {
		t.Fatalf("status after deletes: got %+v", st)
	}
}

func TestMeshErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := f.start()
	if err := m.Commit(ctx, nil, []*meshlink.Link{f.link}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	other := *f.link
	other.Name, other.URL = "in2", "nats-leaf://127.0.0.1:7499"
	billing := *f.export
	billing.To = []string{"billing"}
	for _, tc := range []struct {
		name string
		err  error
		kind error
		msg  string
	}{
		{"retry", m.Retry("nope"), meshlink.ErrNotFound, `no link "nope"`},
		{"delete export", m.DeleteExport(ctx, "nope"), meshlink.ErrNotFound, `no export "nope"`},
		{"delete link", m.DeleteLink(ctx, "nope"), meshlink.ErrNotFound, `no link "nope"`},
		{"replay", second(m.Replay(ctx, "nope", nil)), meshlink.ErrNotFound, `no link "nope"`},
		{"dead letters", third(m.DeadLetters(ctx, "nope", 0, 10)), meshlink.ErrNotFound, `no link "nope"`},
		{"replay too many", second(m.Replay(ctx, "in", make([]uint64, 501))), meshlink.ErrInvalid, "at most 500 export seqs per replay"},
		{"unknown peer", second(m.Check([]*meshlink.Export{&billing}, nil)), meshlink.ErrInvalid,
			`export public: peer "billing" is not configured: add it under peers in the node config (with the secret both nodes share, or its nkey)`},
		{"twice", second(m.Check(nil, []*meshlink.Link{f.link, f.link})), meshlink.ErrInvalid, "link in appears twice"},
		{"other url", second(m.Check(nil, []*meshlink.Link{&other})), meshlink.ErrInvalid,
			"link in2: peer orders is already linked at " + leafURL + "; all links to one peer share its leafnode connection"},
	} {
		if !errors.Is(tc.err, tc.kind) || tc.err.Error() != tc.msg {
			t.Errorf("%s: got %v, want %v %q", tc.name, tc.err, tc.kind, tc.msg)
		}
	}
	// The only link to a peer may move to another URL.
	moved := *f.link
	moved.URL = other.URL
	applied, err := m.Check(nil, []*meshlink.Link{&moved})
	if err != nil || len(applied) != 1 || applied[0].Status != "updated" {
		t.Fatalf("moving the only link: got %v, %v", applied, err)
	}
	if err := m.Retry("in"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	b, _ := json.Marshal(m.Status())
	if !strings.HasPrefix(string(b), `{"links":[{"name":"in","peer":"orders","export":"public"`) {
		t.Fatalf("status JSON: got %s", b)
	}
}

func second[A any](_ A, err error) error        { return err }
func third[A, B any](_ A, _ B, err error) error { return err }
