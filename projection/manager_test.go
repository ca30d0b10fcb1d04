package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/projection"
)

const (
	testStream = "events"
	testPrefix = "ev"
)

// memStore is a SpecStore in memory. It round-trips through JSON, as the
// registry does, so the manager never shares a Spec with it.
type memStore struct {
	mu        sync.Mutex
	specs     map[string][]byte
	aliases   map[string][]byte
	failAlias bool
}

var _ projection.SpecStore = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{specs: map[string][]byte{}, aliases: map[string][]byte{}}
}

func (s *memStore) Specs(context.Context) ([]*projection.Spec, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.specs))
	for k := range s.specs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*projection.Spec
	for _, k := range keys {
		var sp projection.Spec
		if err := json.Unmarshal(s.specs[k], &sp); err != nil {
			return nil, err
		}
		out = append(out, &sp)
	}
	return out, nil
}

func (s *memStore) PutSpec(_ context.Context, sp *projection.Spec) error {
	b, err := json.Marshal(sp)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.specs[fmt.Sprintf("projection.%s.v%d", sp.Name, sp.Version)] = b
	return err
}

func (s *memStore) DeleteSpec(_ context.Context, name string, version int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.specs, fmt.Sprintf("projection.%s.v%d", name, version))
	return nil
}

func (s *memStore) Alias(_ context.Context, name string) (projection.Alias, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a projection.Alias
	b, ok := s.aliases[name]
	if !ok {
		return a, false, nil
	}
	return a, true, json.Unmarshal(b, &a)
}

func (s *memStore) PutAlias(_ context.Context, name string, a projection.Alias) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAlias {
		return errors.New("store down")
	}
	b, err := json.Marshal(a)
	s.aliases[name] = b
	return err
}

func (s *memStore) setFailAlias(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAlias = fail
}

func (s *memStore) alias(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.aliases[name])
}

// testLog is an embedded nats-server with the event log's stream.
type testLog struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startLog(t testing.TB) *testLog {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	l := &testLog{srv: srv}
	l.nc = l.connect(t)
	if l.js, err = jetstream.New(l.nc); err != nil {
		t.Fatal(err)
	}
	_, err = l.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: testStream, Subjects: []string{testPrefix + ".>"}, AllowDirect: true})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *testLog) connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(l.srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// append stores one order event and returns its seq.
func (l *testLog) append(t testing.TB, id, typ, data string) uint64 {
	t.Helper()
	m := nats.NewMsg(testPrefix + ".order." + id + "." + typ)
	m.Header.Set("ce-type", typ)
	m.Header.Set("ce-id", fmt.Sprintf("%s-%s-%d", id, typ, time.Now().UnixNano()))
	m.Header.Set("ce-time", "2026-01-01T00:00:00Z")
	m.Data = []byte(data)
	ack, err := l.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func (l *testLog) head(ctx context.Context) (uint64, error) {
	st, err := l.js.Stream(ctx, testStream)
	if err != nil {
		return 0, err
	}
	return st.CachedInfo().State.LastSeq, nil
}

func testLogger() hclog.Logger {
	level := hclog.Off
	if os.Getenv("DATAMESH_TEST_LOG") != "" {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Level: level, Output: os.Stderr})
}

func (l *testLog) managerConfig(t testing.TB, dir string, store projection.SpecStore, natives ...projection.Native) projection.ManagerConfig {
	return projection.ManagerConfig{
		DataDir: dir, Stream: testStream, SubjectPrefix: testPrefix, ChangesPrefix: "changes",
		Connect: func() (*nats.Conn, error) { return nats.Connect("", nats.InProcessServer(l.srv)) },
		Head:    l.head, Store: store, Natives: natives,
	}
}

func startManager(t testing.TB, cfg projection.ManagerConfig) *projection.Manager {
	t.Helper()
	m := projection.NewManager(cfg, testLogger())
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	return m
}

// checkFor polls cond until it returns nil or the deadline passes.
func checkFor(t testing.TB, total time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitState(t testing.TB, m *projection.Manager, name string, version int, state string) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		w, _, err := m.Worker(name, version)
		if err != nil {
			return err
		}
		if st := w.Status(0); st.State != state {
			return fmt.Errorf("%s v%d: got state %s, want %s", name, version, st.State, state)
		}
		return nil
	})
}

func specVersion(t testing.TB, version int, extra string) *projection.Spec {
	t.Helper()
	doc := strings.Replace(projection.OrdersSpec, "version: 1", fmt.Sprintf("version: %d", version), 1) + extra
	s, err := projection.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apply(t testing.TB, m *projection.Manager, specs ...*projection.Spec) []projection.Applied {
	t.Helper()
	res, start, err := m.Check(specs)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := m.Commit(context.Background(), start); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return res
}

// gate is a native folder that holds every event until opened: its
// version stays building for as long as the test needs.
type gate struct{ open chan struct{} }

func (g gate) Key(ev *projection.Event, _ any) (string, error) { return ev.ID, nil }
func (g gate) Fold(*projection.Event, any, map[string]any) (map[string]any, bool, error) {
	<-g.open
	return map[string]any{"seen": true}, false, nil
}

func nativeSpec(name string) *projection.Spec {
	return &projection.Spec{Kind: projection.KindProjection, Name: name, Version: 1,
		Source: projection.Source{Aggregates: []string{"order"}, Types: []string{"OrderPlaced"}}}
}

func TestManagerApply(t *testing.T) {
	l := startLog(t)
	l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	dir := t.TempDir()
	m := startManager(t, l.managerConfig(t, dir, newMemStore()))
	if res := apply(t, m, specVersion(t, 1, "")); res[0].Status != projection.AppliedCreated {
		t.Fatalf("got %+v, want created", res)
	}
	waitState(t, m, "orders", 1, projection.StateLive)
	if got := m.Active()["orders"]; got != 1 {
		t.Fatalf("got active v%d, want v1 (the first version applied)", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "projections", "orders", "v1.db")); err != nil {
		t.Fatalf("projection file: %v", err)
	}
	if res := apply(t, m, specVersion(t, 1, "")); res[0].Status != projection.AppliedUnchanged {
		t.Fatalf("got %+v, want unchanged", res)
	}
	if _, _, err := m.Check([]*projection.Spec{specVersion(t, 1, "changes: true\n")}); !errors.Is(err, projection.ErrConflict) {
		t.Fatalf("changed definition: got %v, want ErrConflict", err)
	}
	if _, _, err := m.Check([]*projection.Spec{specVersion(t, 2, ""), specVersion(t, 2, "")}); !errors.Is(err, projection.ErrInvalid) ||
		err.Error() != "projection orders version 2 appears twice" {
		t.Fatalf("twice: got %v, want ErrInvalid", err)
	}
}

func TestManagerPromoteBuildingIsRefused(t *testing.T) {
	l := startLog(t)
	seq := l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	g := gate{open: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(g.open) }) }
	m := startManager(t, l.managerConfig(t, t.TempDir(), newMemStore(), projection.Native{Spec: nativeSpec("slow"), Folder: g}))
	t.Cleanup(release) // before the manager's Close: cleanups run last first

	// The native slow v1 is held building by its folder.
	_, err := m.Promote(context.Background(), "slow", 1)
	want := fmt.Sprintf("projection slow v1 is building (applied 0 of %d, 0%%): only a live version can be promoted", seq)
	if !errors.Is(err, projection.ErrNotReady) || err.Error() != want {
		t.Fatalf("promote building: got %v, want ErrNotReady %q", err, want)
	}
	if _, _, err := m.Check([]*projection.Spec{nativeSpec("slow")}); !errors.Is(err, projection.ErrConflict) ||
		err.Error() != "projection slow version 1 is defined in Go by the program that embeds this node" {
		t.Fatalf("apply over a native: got %v, want ErrConflict", err)
	}
	release()
	waitState(t, m, "slow", 1, projection.StateLive)
	if _, err := m.Promote(context.Background(), "slow", 1); err != nil {
		t.Fatalf("promote once live: %v", err)
	}
}

func TestManagerPromoteRollbackRetire(t *testing.T) {
	l := startLog(t)
	l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	store, dir := newMemStore(), t.TempDir()
	m := startManager(t, l.managerConfig(t, dir, store))
	apply(t, m, specVersion(t, 1, ""), specVersion(t, 2, ""))
	waitState(t, m, "orders", 2, projection.StateLive)
	if prev, err := m.Promote(context.Background(), "orders", 2); err != nil || prev != 1 {
		t.Fatalf("promote: got previous %d, err %v; want 1, nil", prev, err)
	}
	if got, want := store.alias("orders"), `{"active":2,"previous":[1]}`; got != want {
		t.Fatalf("stored alias: got %s, want %s", got, want)
	}
	if err := m.Retire(context.Background(), "orders", 2); !errors.Is(err, projection.ErrConflict) ||
		err.Error() != "projection orders v2 is active: promote another version first" {
		t.Fatalf("retire active: got %v, want ErrConflict", err)
	}
	if from, to, err := m.Rollback(context.Background(), "orders"); err != nil || from != 2 || to != 1 {
		t.Fatalf("rollback: got %d→%d, %v; want 2→1", from, to, err)
	}
	store.setFailAlias(true)
	if _, err := m.Promote(context.Background(), "orders", 2); !errors.Is(err, projection.ErrUnavailable) ||
		err.Error() != "store active version: store down" {
		t.Fatalf("promote with the store down: got %v, want ErrUnavailable", err)
	}
	if got := m.Active()["orders"]; got != 1 {
		t.Fatalf("after a failed promote: got active v%d, want v1", got)
	}
	store.setFailAlias(false)
	if err := m.Retire(context.Background(), "orders", 2); err != nil {
		t.Fatalf("retire: %v", err)
	}
	if specs, _ := store.Specs(context.Background()); len(specs) != 1 || specs[0].Version != 1 {
		t.Fatalf("stored specs after retire: got %d, want v1 alone", len(specs))
	}
	if _, err := os.Stat(filepath.Join(dir, "projections", "orders", "v2.db")); !os.IsNotExist(err) {
		t.Fatalf("retired file: got %v, want it gone", err)
	}
	if _, _, err := m.Worker("orders", 2); !errors.Is(err, projection.ErrNotFound) {
		t.Fatalf("retired worker: got %v, want ErrNotFound", err)
	}
	if _, _, err := m.Rollback(context.Background(), "nope"); !errors.Is(err, projection.ErrNotFound) || err.Error() != `no projection "nope"` {
		t.Fatalf("rollback unknown: got %v", err)
	}
}

func TestManagerRestartKeepsAliasAndCheckpoint(t *testing.T) {
	l := startLog(t)
	store, dir := newMemStore(), t.TempDir()
	m := startManager(t, l.managerConfig(t, dir, store))
	apply(t, m, specVersion(t, 1, ""), specVersion(t, 2, ""))
	seq := l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	waitState(t, m, "orders", 2, projection.StateLive)
	if _, err := m.Promote(context.Background(), "orders", 2); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		if w, _, _ := m.Worker("orders", 2); w.Applied() != seq {
			return fmt.Errorf("got applied %d, want %d", w.Applied(), seq)
		}
		return nil
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = startManager(t, l.managerConfig(t, dir, store))
	w, active, err := m.Worker("orders", 0)
	if err != nil || !active || w.Spec().Version != 2 {
		t.Fatalf("after restart: got %v active %v, %v; want v2 active", w, active, err)
	}
	if w.Applied() != seq {
		t.Fatalf("after restart: got applied %d, want the checkpoint %d", w.Applied(), seq)
	}
	st := m.Statuses(context.Background())
	if len(st) != 2 || st[0].Version != 1 || st[0].Active || st[1].Version != 2 || !st[1].Active {
		t.Fatalf("statuses: got %+v, want v1 then v2, v2 active", st)
	}
}

func TestManagerAutoPromote(t *testing.T) {
	l := startLog(t)
	l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	m := startManager(t, l.managerConfig(t, t.TempDir(), newMemStore()))
	apply(t, m, specVersion(t, 1, ""))
	apply(t, m, specVersion(t, 2, "promote: auto\n"))
	checkFor(t, 10*time.Second, func() error {
		if got := m.Active()["orders"]; got != 2 {
			return fmt.Errorf("got active v%d, want v2 (promote: auto)", got)
		}
		return nil
	})
}

func TestManagerCloseTwice(t *testing.T) {
	l := startLog(t)
	m := startManager(t, l.managerConfig(t, t.TempDir(), newMemStore()))
	apply(t, m, specVersion(t, 1, "promote: auto\n"))
	first, second := m.Close(), m.Close()
	if first != nil || second != first {
		t.Fatalf("got %v then %v, want nil twice", first, second)
	}
	if err := m.Start(context.Background()); err == nil {
		t.Fatal("start after close: got nil, want an error")
	}
	if err := m.Commit(context.Background(), []*projection.Spec{specVersion(t, 2, "")}); err == nil {
		t.Fatal("commit after close: got nil, want an error")
	}
}

func TestWorkerLifecycle(t *testing.T) {
	l := startLog(t)
	seq := l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	spec := specVersion(t, 1, "")
	w, err := projection.NewWorker(projection.Config{Spec: spec, Path: filepath.Join(t.TempDir(), "v1.db"),
		Conn: l.connect(t), JS: l.js, Stream: testStream, SubjectPrefix: testPrefix}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Retry(); !errors.Is(err, projection.ErrConflict) {
		t.Fatalf("retry of a worker not failed: got %v, want ErrConflict", err)
	}

	// Not started, the worker never applies seq: the query waits until Close wakes it.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := w.Query(ctx, &projection.Query{Get: new("o-1"), MinSeq: seq})
		done <- err
	}()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, projection.ErrNotUpToDate) || !strings.Contains(err.Error(), "stopped") {
			t.Fatalf("query on a closed worker: got %v, want ErrNotUpToDate (stopped)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting query was not woken by Close")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: got %v, want the first one's nil", err)
	}
	if err := w.Start(context.Background()); err == nil {
		t.Fatal("start after close: got nil, want an error")
	}
}

func TestQueryErrorKinds(t *testing.T) {
	l := startLog(t)
	l.append(t, "o-1", "OrderPlaced", `{"customer":"c-1","total":3}`)
	m := startManager(t, l.managerConfig(t, t.TempDir(), newMemStore()))
	apply(t, m, specVersion(t, 1, ""))
	waitState(t, m, "orders", 1, projection.StateLive)
	w, _, err := m.Worker("orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err == nil {
		t.Fatal("second start: got nil, want an error")
	}
	_, err = w.Query(context.Background(), &projection.Query{Get: new("o-9")})
	if !errors.Is(err, projection.ErrNotFound) || err.Error() != `no document "o-9"` {
		t.Fatalf("get missing: got %v, want ErrNotFound", err)
	}
	q := &projection.Query{Get: new("o-1"), History: new("o-1")}
	if err := q.Check(w.Spec()); !errors.Is(err, projection.ErrInvalid) ||
		err.Error() != "a query needs exactly one of get, list, count or history" {
		t.Fatalf("bad query: got %v, want ErrInvalid", err)
	}
	res, err := w.Query(context.Background(), &projection.Query{Get: new("o-1")})
	if err != nil || string(res.Doc) == "" {
		t.Fatalf("get: got %+v, %v", res, err)
	}
}
