package eventlog_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/datamesh/datamesh/node/embed"
	"github.com/datamesh/datamesh/node/eventlog"
)

// noContracts: every event type is free.
type noContracts struct{}

func (noContracts) Check(string, string, []byte) (string, bool, error) { return "", false, nil }

const (
	testStream   = "EVENTS"
	testMaxEvent = 256 << 10
)

// startLog runs a server on dir and a log in fsync mode on it.
func startLog(t *testing.T, dir string) (*eventlog.Log, *embed.Server) {
	t.Helper()
	srv, err := embed.New(embed.Config{Name: "t", DataDir: dir, NoListen: true, LogLevel: hclog.Warn,
		MaxPayload: 4 * testMaxEvent}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l := eventlog.New(eventlog.Config{Node: "t", Stream: testStream, SubjectPrefix: "ev", MaxEventBytes: testMaxEvent,
		DedupWindow: time.Minute, Dir: srv.StreamDir(embed.NodeAccount, testStream), Fsync: true}, nc, noContracts{}, hclog.NewNullLogger())
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, srv
}

// appendWait appends one event and waits for its answer.
func appendWait(t *testing.T, l *eventlog.Log, id string, data []byte) uint64 {
	t.Helper()
	m, err := l.Prepare("order", id, &eventlog.Draft{Type: "Placed", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		seq uint64
		err error
	}
	ch := make(chan answer, 1)
	l.Append(&eventlog.Append{Msg: m, Aggregate: "order", ID: id,
		Done: func(seq uint64, _ bool, err error) { ch <- answer{seq, err} }})
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatal(a.err)
		}
		return a.seq
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to an append")
		return 0
	}
}

// TestFileStoreLayoutAndFlushInPlace checks what group commit relies on in
// nats-server's file store (docs/performance.md, "Group commit"), so that
// an upgrade that changes it fails here, not as lost events after a power
// loss:
//   - a stream's messages are in <StreamDir>/msgs/<n>.blk, n counting up
//     from 1 as blocks fill;
//   - a one-replica stream without sync_always has written each message
//     into its block file (to the OS) by the time it acknowledges it: what
//     the node's fsync of that file then makes durable.
func TestFileStoreLayoutAndFlushInPlace(t *testing.T) {
	l, srv := startLog(t, t.TempDir())
	msgs := filepath.Join(srv.StreamDir(embed.NodeAccount, testStream), "msgs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(msgs), "meta.inf")); err != nil {
		t.Fatalf("the stream's metadata is not where StreamDir says: %v", err)
	}
	// 100 KiB events: the 8 MiB blocks of an unlimited stream fill after
	// about 80, so the run crosses into a second block.
	const events = 100
	for i := range events {
		marker := fmt.Sprintf("marker-%04d-", i)
		data := []byte(`"` + marker + string(bytes.Repeat([]byte("x"), 100<<10)) + `"`)
		seq := appendWait(t, l, fmt.Sprintf("o-%d", i), data)
		if seq != uint64(i+1) {
			t.Fatalf("event %d got seq %d", i, seq)
		}
		// At once, without waiting: the acknowledged message is in a block
		// file on disk (in the OS's cache at least).
		if blk := blockHolding(t, msgs, []byte(marker)); blk == "" {
			t.Fatalf("event %d (seq %d) acknowledged but in no block file of %s: nats-server no longer writes in place before the ack", i, seq, msgs)
		}
	}
	first, last := blockHolding(t, msgs, []byte("marker-0000-")), blockHolding(t, msgs, []byte(fmt.Sprintf("marker-%04d-", events-1)))
	if first != "1.blk" || last != "2.blk" {
		t.Fatalf("first event in %q, last in %q: want 1.blk and 2.blk (block files numbered from 1 as they fill)", first, last)
	}
}

// blockHolding returns the name of the .blk file in dir that holds b, or "".
func blockHolding(t *testing.T, dir string, b []byte) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".blk" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return e.Name()
		}
	}
	return ""
}

// Writes made durable after a restart on the same files: the log's syncer
// finds the last block again and keeps going.
func TestGroupCommitAfterRestart(t *testing.T) {
	dir := t.TempDir()
	l, srv := startLog(t, dir)
	for i := range 3 {
		appendWait(t, l, fmt.Sprintf("o-%d", i), []byte(`{}`))
	}
	l.Close()
	srv.Close()
	l, _ = startLog(t, dir)
	if seq := appendWait(t, l, "o-9", []byte(`{}`)); seq != 4 {
		t.Fatalf("after a restart: got seq %d, want 4", seq)
	}
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}
