package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// countsSpec is a projection whose documents say which version made them.
func countsSpec(version int, extra string) []byte {
	return fmt.Appendf(nil, `kind: Projection
name: counts
version: %d
source: {aggregates: [order], types: [OrderPlaced, ItemAdded]}
key: event.id
handlers:
  OrderPlaced: "{v: %d, customer: data.customer, count: 0, total: 0%s}"
  ItemAdded: "merge(doc, {count: doc.count + 1, total: doc.total + data.price})"
indexes:
  by_total: {field: total, type: number}
`, version, version, extra)
}

// fillLog appends aggregates × perAggregate events in atomic batches.
func fillLog(t testing.TB, c *client.Client, aggregates, perAggregate int) uint64 {
	t.Helper()
	var last uint64
	for a := range aggregates {
		evs := make([]map[string]any, perAggregate)
		evs[0] = map[string]any{"type": "OrderPlaced", "data": map[string]any{"customer": fmt.Sprintf("c-%d", a), "total": 0}}
		for i := 1; i < perAggregate; i++ {
			evs[i] = map[string]any{"type": "ItemAdded", "data": map[string]any{"sku": "s", "price": 1}}
		}
		r, err := c.AppendBatch("order", fmt.Sprintf("bulk-%04d", a), evs, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = r.LastSeq
	}
	return last
}

func status(t testing.TB, c *client.Client, name string, version int) projection.Status {
	t.Helper()
	r, err := c.Projections()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Projections {
		if s.Name == name && s.Version == version {
			return s
		}
	}
	t.Fatalf("no status for %s v%d", name, version)
	return projection.Status{}
}

// TestBlueGreenUpgradeUnderLoad rebuilds v2 of a projection over 200k
// events while appends and v1 queries go on, then promotes, rolls back and
// retires, checking that no request fails and none sees a mix of versions.
func TestBlueGreenUpgradeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("200k-event rebuild; run without -short")
	}
	dir := t.TempDir()
	cfg := testConfig(dir)
	n := startNode(t, cfg)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	if _, err := c.Apply(countsSpec(1, ""), false); err != nil {
		t.Fatal(err)
	}
	last := fillLog(t, c, 200, 1000)
	waitLive(t, c, "counts", last)

	// The load runs from here until stopAndCheck, through the rebuild, the
	// promote and the rollback.
	load := startUpgradeLoad(c)
	rebuildV2UnderLoad(t, c, load)
	promoteAndRollBackUnderLoad(t, c, load)
	load.stopAndCheck(t)

	// Retire: refused for the active version; the other one's file goes.
	_, err := c.Retire("counts", 1)
	wantAPIError(t, err, protocol.CodeConflict)
	if _, err := c.Promote("counts", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Retire("counts", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "projections", "counts", "v1.db")); !os.IsNotExist(err) {
		t.Fatalf("v1's file is still there: %v", err)
	}
	_, err = c.Query("counts", projection.Query{Get: ptr("bulk-0007"), Version: 1})
	wantAPIError(t, err, protocol.CodeNotFound)

	// A restart keeps the alias and resumes v2 from its checkpoint.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, cfg)
	c2 := newClient(t, n2)
	got, err := c2.Query("counts", projection.Query{Get: ptr("live-0"), MinSeq: load.lastAppendSeq.Load()})
	if err != nil {
		t.Fatal(err)
	}
	if v := docMap(t, got.Doc)["v"]; v != 2.0 {
		t.Fatalf("after restart the alias answered with v%v, want v2", v)
	}
}

// upgradeLoad is the load of TestBlueGreenUpgradeUnderLoad: appends to new
// orders, and queries of one document through the alias, each checking
// which version answered.
type upgradeLoad struct {
	stop             context.CancelFunc
	wg               sync.WaitGroup
	appends, queries atomic.Int64
	loadErr          chan error
	sawV2            atomic.Bool
	mixAfterPromote  atomic.Int64
	lastAppendSeq    atomic.Uint64
	// gen is even while no switch is under way: 0 before the promote
	// (v1 answers), 2 after it (v2), 4 after the rollback (v1); odd
	// while a switch is in flight.
	gen atomic.Int64
}

// upgradeWantVersion is the version that must answer through the alias at
// each even upgradeLoad.gen.
var upgradeWantVersion = map[int64]int{0: 1, 2: 2, 4: 1}

// startUpgradeLoad starts the appending and the querying goroutine; they
// run until stopAndCheck.
func startUpgradeLoad(c *client.Client) *upgradeLoad {
	ctx, stop := context.WithCancel(context.Background())
	l := &upgradeLoad{stop: stop, loadErr: make(chan error, 100)}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			r, err := c.Append("order", fmt.Sprintf("live-%d", i), "OrderPlaced", []byte(`{"customer":"live","total":1}`), client.AppendOptions{})
			if err != nil {
				l.loadErr <- fmt.Errorf("append: %w", err)
				return
			}
			l.lastAppendSeq.Store(r.Seq)
			l.appends.Add(1)
		}
	}()
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			if err := l.queryOnce(c); err != nil {
				l.loadErr <- err
				return
			}
		}
	}()
	return l
}

// queryOnce gets bulk-0007 through the alias and counts it as a mix if,
// with no switch under way across the query, the other version answered.
func (l *upgradeLoad) queryOnce(c *client.Client) error {
	before := l.gen.Load()
	r, err := c.Query("counts", projection.Query{Get: ptr("bulk-0007")})
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	var doc struct {
		V     int `json:"v"`
		Count int `json:"count"`
	}
	if err := json.Unmarshal(r.Doc, &doc); err != nil || doc.Count != 999 {
		return fmt.Errorf("query: got %s, want a whole document", r.Doc)
	}
	if after := l.gen.Load(); before == after && before%2 == 0 && doc.V != upgradeWantVersion[before] {
		l.mixAfterPromote.Add(1) // no switch under way, yet the other version answered
	}
	if doc.V == 2 {
		l.sawV2.Store(true)
	}
	l.queries.Add(1)
	return nil
}

// stopAndCheck stops the load and fails t if any request failed or saw a
// mix of versions.
func (l *upgradeLoad) stopAndCheck(t testing.TB) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	close(l.loadErr)
	for err := range l.loadErr {
		t.Fatal(err)
	}
	if l.mixAfterPromote.Load() != 0 {
		t.Fatalf("%d queries saw the old version after the switch returned", l.mixAfterPromote.Load())
	}
	t.Logf("during the upgrade: %d appends, %d queries, no errors", l.appends.Load(), l.queries.Load())
}

// rebuildV2UnderLoad applies v2 beside v1 and waits for it to be live,
// checking that it cannot be promoted and does not answer through the
// alias meanwhile.
func rebuildV2UnderLoad(t testing.TB, c *client.Client, load *upgradeLoad) {
	t.Helper()
	r, err := c.Apply(countsSpec(2, ", vip: data.total > 100"), false)
	if err != nil || r.Results[0].Status != "created" {
		t.Fatalf("apply v2: %v %+v", err, r)
	}
	_, err = c.Promote("counts", 2)
	e := wantAPIError(t, err, protocol.CodeNotReady)
	if e.Message == "" {
		t.Fatal("not_ready without a message")
	}
	if st := status(t, c, "counts", 2); st.State != projection.StateBuilding || st.Active {
		t.Logf("v2 status right after apply: %+v", st)
	}
	if load.sawV2.Load() {
		t.Fatal("a query through the alias was answered by v2 before promotion")
	}
	waitLive(t, c, "counts", 0) // the active one (v1) stays live
	checkFor(t, 5*time.Minute, 50*time.Millisecond, func() error {
		if st := status(t, c, "counts", 2); st.State != projection.StateLive {
			return fmt.Errorf("v2: %s %d/%d", st.State, st.Applied, st.Head)
		}
		return nil
	})
}

// promoteAndRollBackUnderLoad promotes v2 and rolls back to v1, bumping
// load.gen around each switch so the queries know when one is in flight.
func promoteAndRollBackUnderLoad(t testing.TB, c *client.Client, load *upgradeLoad) {
	t.Helper()
	load.gen.Add(1)
	a, err := c.Promote("counts", 2)
	if err != nil || a.Active != 2 || a.Previous != 1 {
		t.Fatalf("promote: %v %+v", err, a)
	}
	load.gen.Add(1)
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !load.sawV2.Load() {
			return errors.New("no query answered by v2 yet")
		}
		return nil
	})
	// Explicit versions answer whatever the alias says.
	if got := query(t, c, "counts", projection.Query{Get: ptr("bulk-0007"), Version: 1}); docMap(t, got.Doc)["v"] != 1.0 {
		t.Fatalf("version 1 query answered %s", got.Doc)
	}

	load.gen.Add(1)
	b, err := c.Rollback("counts")
	if err != nil || b.Active != 1 || b.Previous != 2 {
		t.Fatalf("rollback: %v %+v", err, b)
	}
	load.gen.Add(1)
	rolledAt := load.queries.Load()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if q := load.queries.Load(); q < rolledAt+10 {
			return fmt.Errorf("only %d queries since the rollback", q-rolledAt)
		}
		return nil
	})
}

func TestUpgradeAPIErrors(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	_, err := c.Promote("nope", 1)
	wantAPIError(t, err, protocol.CodeNotFound)
	_, err = c.Promote("orders", 7)
	wantAPIError(t, err, protocol.CodeNotFound)
	_, err = c.Rollback("orders")
	wantAPIError(t, err, protocol.CodeConflict) // nothing to roll back to
	_, err = c.Retire("orders", 1)
	wantAPIError(t, err, protocol.CodeConflict) // active
	nc := dial(t, n)
	wantErrorReply(t, request(t, nc, protocol.SubjectPromote, nil, `{"name":"orders"}`), "400", protocol.CodeBadRequest)
	wantErrorReply(t, request(t, nc, protocol.SubjectRetire, nil, `nope`), "400", protocol.CodeBadRequest)
}

// TestPromoteAuto: a version with promote: auto becomes active once live,
// and a rollback away from it sticks across restarts.
func TestPromoteAuto(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := startNode(t, cfg)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	if _, err := c.Apply(countsSpec(1, ""), false); err != nil {
		t.Fatal(err)
	}
	last := fillLog(t, c, 5, 100)
	auto := append(countsSpec(2, ""), []byte("promote: auto\n")...)
	if _, err := c.Apply(auto, false); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		got, err := c.Query("counts", projection.Query{Get: ptr("bulk-0001"), MinSeq: last})
		if err != nil {
			return err
		}
		if v := docMap(t, got.Doc)["v"]; v != 2.0 {
			return fmt.Errorf("answered by v%v", v)
		}
		return nil
	})
	if _, err := c.Rollback("counts"); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, cfg)
	c2 := newClient(t, n2)
	waitLive(t, c2, "counts", last)
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s := status(t, c2, "counts", 2); s.State != projection.StateLive {
			return fmt.Errorf("v2 %s", s.State)
		}
		return nil
	})
	if s := status(t, c2, "counts", 1); !s.Active {
		t.Fatalf("after a rollback and a restart v2 promoted itself again: %+v", s)
	}
}
