package meshlink_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/schemas"
)

// The mesh's dependencies over one embedded server whose JetStream domain
// is the node's name: a node that exports to itself and links to itself,
// every account being the global one. It runs the real export and link
// workers, the real log, and keeps its state in memory.

func testLogger(t testing.TB) hclog.Logger {
	level := hclog.Warn
	if os.Getenv("DATAMESH_TEST_LOG") != "" {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: level, Output: os.Stderr})
}

// startServer runs a JetStream server in domain, shut down at the end of the test.
func startServer(t testing.TB, domain string) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		JetStreamDomain: domain, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server not ready")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// dialer connects in process; every account is the global one.
type dialer struct{ srv *server.Server }

func (d dialer) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect("", append([]nats.Option{nats.InProcessServer(d.srv)}, opts...)...)
}
func (d dialer) ConnectExport(_ string, opts ...nats.Option) (*nats.Conn, error) {
	return d.Connect(opts...)
}
func (d dialer) ConnectPeer(_ string, opts ...nats.Option) (*nats.Conn, error) {
	return d.Connect(opts...)
}

// leafnodes records the remotes; the "peer" is always connected.
type leafnodes struct {
	mu      sync.Mutex
	remotes map[string]string
	calls   int
}

func (l *leafnodes) SetRemotes(r map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remotes, l.calls = r, l.calls+1
	return nil
}
func (l *leafnodes) get() (map[string]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.remotes), l.calls
}
func (l *leafnodes) ExportConnected(string) bool { return true }
func (l *leafnodes) PeerConnected(string) bool   { return true }

// contracts accepts every event but those of type Refused.
type contracts struct{}

func (contracts) Check(_, typ string, _ []byte) (string, bool, error) {
	if typ == "Refused" {
		return "", false, &schemas.ViolationError{Contract: "order.Refused", Violations: []schemas.Violation{{Message: "refused by test"}}}
	}
	return "", false, nil
}
func (contracts) EventTypes() []schemas.CatalogEntry {
	return []schemas.CatalogEntry{
		{Aggregate: "order", Type: "OrderPlaced", Schema: json.RawMessage(`{"type":"object"}`)},
		{Aggregate: "customer", Type: "CustomerAdded", Schema: json.RawMessage(`{"type":"object"}`)},
	}
}

// memStore keeps the mesh's state in memory, in its JSON form as the
// node's store does.
type memStore struct {
	mu   sync.Mutex
	kv   map[string][]byte
	puts int
}

func newMemStore() *memStore { return &memStore{kv: map[string][]byte{}} }

func (s *memStore) put(key string, v any) {
	b, _ := json.Marshal(v)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[key] = b
	s.puts++
}
func (s *memStore) get(key string, v any) bool {
	s.mu.Lock()
	b, ok := s.kv[key]
	s.mu.Unlock()
	return ok && json.Unmarshal(b, v) == nil
}
func (s *memStore) del(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kv, key)
}
func (s *memStore) keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.kv {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func dlKey(link string, seq uint64) string {
	return "deadletter." + link + "." + strconv.FormatUint(seq, 10)
}

func (s *memStore) Exports(context.Context) ([]*meshlink.Export, error) {
	var out []*meshlink.Export
	for _, k := range s.keys("export.") {
		var e meshlink.Export
		s.get(k, &e)
		out = append(out, &e)
	}
	return out, nil
}
func (s *memStore) PutExport(_ context.Context, e *meshlink.Export) error {
	s.put("export."+e.Name, e)
	return nil
}
func (s *memStore) DeleteExport(_ context.Context, name string) error {
	s.del("export." + name)
	return nil
}
func (s *memStore) Links(context.Context) ([]*meshlink.Link, error) {
	var out []*meshlink.Link
	for _, k := range s.keys("link.") {
		var l meshlink.Link
		s.get(k, &l)
		out = append(out, &l)
	}
	return out, nil
}
func (s *memStore) PutLink(_ context.Context, l *meshlink.Link) error {
	s.put("link."+l.Name, l)
	return nil
}
func (s *memStore) DeleteLink(_ context.Context, name string) error {
	s.del("link." + name)
	return nil
}
func (s *memStore) Checkpoint(_ context.Context, link string) (meshlink.Checkpoint, error) {
	var cp meshlink.Checkpoint
	s.get("checkpoint."+link, &cp)
	return cp, nil
}
func (s *memStore) PutCheckpoint(_ context.Context, link string, cp meshlink.Checkpoint) error {
	s.put("checkpoint."+link, cp)
	return nil
}
func (s *memStore) CreateDeadLetter(_ context.Context, dl meshlink.DeadLetter) (bool, error) {
	var old meshlink.DeadLetter
	if s.get(dlKey(dl.Link, dl.ExportSeq), &old) {
		return false, nil
	}
	s.put(dlKey(dl.Link, dl.ExportSeq), dl)
	return true, nil
}
func (s *memStore) DeadLetter(_ context.Context, link string, seq uint64) (meshlink.DeadLetter, bool, error) {
	var dl meshlink.DeadLetter
	found := s.get(dlKey(link, seq), &dl)
	return dl, found, nil
}
func (s *memStore) PutDeadLetter(_ context.Context, dl meshlink.DeadLetter) error {
	s.put(dlKey(dl.Link, dl.ExportSeq), dl)
	return nil
}
func (s *memStore) DeleteDeadLetter(_ context.Context, link string, seq uint64) error {
	s.del(dlKey(link, seq))
	return nil
}
func (s *memStore) DeadLetterSeqs(_ context.Context, link string) ([]uint64, error) {
	var out []uint64
	for _, k := range s.keys("deadletter." + link + ".") {
		var dl meshlink.DeadLetter
		s.get(k, &dl)
		out = append(out, dl.ExportSeq)
	}
	return out, nil
}

var _ meshlink.Store = (*memStore)(nil)
var _ meshlink.Dialer = dialer{}
var _ meshlink.Leafnodes = (*leafnodes)(nil)
var _ meshlink.Contracts = contracts{}
var _ eventlog.Contracts = contracts{}

// testLog opens the node's log on srv.
func testLog(t testing.TB, srv *server.Server) (*eventlog.Log, *nats.Conn) {
	t.Helper()
	nc, err := dialer{srv}.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	l := eventlog.New(eventlog.Config{Node: "orders", Stream: "EVENTS", SubjectPrefix: "evt", MaxEventBytes: 1 << 16,
		DedupWindow: time.Minute}, nc, contracts{}, testLogger(t))
	if err := l.Start(context.Background()); err != nil {
		t.Fatalf("start log: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, nc
}

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
