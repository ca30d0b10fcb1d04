package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// clusterConfigs are the configs of a node of n servers on loopback: same
// name, one data directory and route port each, every route listed.
func clusterConfigs(t testing.TB, n int) []node.Config {
	routes := make([]string, n)
	listens := make([]string, n)
	for i := range n {
		listens[i] = freeLeafListen(t)
		routes[i] = "nats-route://" + listens[i]
	}
	cfgs := make([]node.Config, n)
	for i := range n {
		cfg := testConfig(t.TempDir())
		cfg.Name = "shop"
		cfg.ServerName = fmt.Sprintf("s%d", i)
		cfg.Cluster = &node.Cluster{Listen: listens[i], Routes: routes}
		cfgs[i] = cfg
	}
	return cfgs
}

// startServers starts every config at once (each waits for a quorum), and
// closes them at the end of the test.
func startServers(t testing.TB, cfgs []node.Config) []*node.Node {
	t.Helper()
	return startServersWith(t, cfgs, func(node.Config) hclog.Logger { return testLogger(t) })
}

// startServersWith is startServers with each server's logger from logger.
func startServersWith(t testing.TB, cfgs []node.Config, logger func(node.Config) hclog.Logger) []*node.Node {
	t.Helper()
	nodes := make([]*node.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		n, err := node.New(cfg, logger(cfg))
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { n.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs[i] = n.Start(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start server %s: %v", cfgs[i].ServerName, err)
		}
	}
	return nodes
}

// TestClusterAppendsAndQueriesOnEveryServer appends through each server
// of a three-server node and queries each with min_seq: every server's
// projection has every write, including the ones made through another.
func TestClusterAppendsAndQueriesOnEveryServer(t *testing.T) {
	servers := startServers(t, clusterConfigs(t, 3))
	clients := make([]*client.Client, len(servers))
	for i, s := range servers {
		clients[i] = newClient(t, s)
	}
	applyOrders(t, clients[0])
	var last uint64
	for i := range 30 {
		last = placeOrder(t, clients[i%3], fmt.Sprintf("o-%d", i), "ada", float64(i))
	}
	if last != 30 {
		t.Fatalf("last seq %d, want 30", last)
	}
	for i, c := range clients {
		res, err := c.Query("orders", projection.Query{Count: &projection.Filter{}, MinSeq: last})
		if err != nil {
			t.Fatalf("query on server s%d: %v", i, err)
		}
		if res.Count == nil || *res.Count != 30 || res.Seq < last {
			t.Fatalf("server s%d: count %v as of %d, want 30 as of %d", i, res.Count, res.Seq, last)
		}
	}
	checkAppendRulesAcrossServers(t, clients)
	// Each server answers appends addressed to it (node/client sends
	// there): the reply is an append's; no server answers for another name.
	for _, s := range servers {
		nc := dial(t, s)
		h := nats.Header{protocol.HeaderType: {"OrderPlaced"}}
		resp := request(t, nc, protocol.SubjectAppendOn+"."+s.ServerName()+".order.on-"+s.ServerName(), h, `{"customer":"ada","total":1}`)
		if resp.Header.Get("Nats-Service-Error-Code") != "" || !strings.Contains(string(resp.Data), `"seq"`) {
			t.Fatalf("append on %s: %s %s", s.ServerName(), resp.Header, resp.Data)
		}
		if _, err := nc.Request(protocol.SubjectAppendOn+".nope.order.o-1", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("append on an unknown server: %v, want no responders", err)
		}
	}
	// Each server answers for its own projections (datamesh status).
	r, err := clients[0].Projections()
	if err != nil || len(r.Servers) != 3 {
		t.Fatalf("servers: %v %+v", err, r)
	}
	for _, name := range r.Servers {
		sr, err := clients[1].ServerProjections(name)
		if err != nil || sr.Server != name || len(sr.Projections) != 1 || sr.Projections[0].Applied < last {
			t.Fatalf("server %s's projections: %v %+v", name, err, sr)
		}
	}
}

// checkAppendRulesAcrossServers: on the R3 log, atomic batches,
// Dm-Expected-Version and ce-id idempotency mean what they mean on one
// server, whichever servers the writes and their retries go through.
func checkAppendRulesAcrossServers(t *testing.T, clients []*client.Client) {
	t.Helper()
	b, err := clients[1].AppendBatch("order", "b-1", orderEvents(3, "a"), client.Expect(0))
	if err != nil || b.Count != 3 || b.LastSeq != b.FirstSeq+2 {
		t.Fatalf("atomic batch on R3: %+v %v", b, err)
	}
	// Retried through another server: the same seqs, stored once.
	again, err := clients[2].AppendBatch("order", "b-1", orderEvents(3, "a"), client.Expect(0))
	if err != nil || !again.Duplicate || again.FirstSeq != b.FirstSeq {
		t.Fatalf("batch retried through another server: %+v %v, want a duplicate of %+v", again, err, b)
	}
	// A stale expected version, and a batch with one invalid event, store nothing.
	_, err = clients[0].AppendBatch("order", "b-1", orderEvents(2, "c"), client.Expect(b.FirstSeq))
	if e := wantAPIError(t, err, protocol.CodeVersionConflict); e.CurrentVersion == nil || *e.CurrentVersion != b.LastSeq {
		t.Fatalf("stale expected version: %+v, want current_version %d", e, b.LastSeq)
	}
	bad := orderEvents(3, "d")
	bad[2]["data"] = map[string]any{"sku": "s", "price": "free"}
	_, err = clients[2].AppendBatch("order", "b-1", bad, client.Expect(b.LastSeq))
	wantAPIError(t, err, protocol.CodeSchemaViolation)
	if got := len(readAll(t, clients[0], "order", "b-1")); got != 3 {
		t.Fatalf("after refused writes: %d events of b-1, want 3", got)
	}
	// One event with a ce-id, retried through each server: stored once.
	var seq uint64
	for i, c := range clients {
		r, err := c.Append("order", "b-1", "ItemAdded", []byte(`{"sku":"x","price":1}`),
			client.AppendOptions{ID: "one", ExpectedVersion: client.Expect(b.LastSeq)})
		if err != nil {
			t.Fatalf("append through s%d: %v", i, err)
		}
		if i == 0 {
			seq = r.Seq
		} else if !r.Duplicate || r.Seq != seq {
			t.Fatalf("retry through s%d: %+v, want a duplicate at %d", i, r, seq)
		}
	}
}

// TestClusterFollowsChangesMadeThroughAnyServer applies, promotes and
// retires through the API (served by any server of the queue group) and
// checks that every server follows: each answers from the new version.
func TestClusterFollowsChangesMadeThroughAnyServer(t *testing.T) {
	servers := startServers(t, clusterConfigs(t, 3))
	c0 := newClient(t, servers[0])
	applyOrders(t, c0)
	seq := placeOrder(t, c0, "o-1", "ada", 5)
	if _, err := c0.Apply(readExample(t, "changes/projection-orders-v2.yaml"), false); err != nil {
		t.Fatalf("apply v2: %v", err)
	}
	// Every server runs v2 and has it live before it is promoted.
	for i, s := range servers {
		checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			for _, st := range s.ProjectionStatuses(context.Background()) {
				if st.Version == 2 && st.State == projection.StateLive && st.Applied >= seq {
					return nil
				}
			}
			return fmt.Errorf("server s%d has no live v2: %+v", i, s.ProjectionStatuses(context.Background()))
		})
	}
	if _, err := c0.Promote("orders", 2); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if _, err := c0.Retire("orders", 1); err != nil {
		t.Fatalf("retire: %v", err)
	}
	for i, s := range servers {
		checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			st := s.ProjectionStatuses(context.Background())
			if len(st) != 1 || st[0].Version != 2 || !st[0].Active {
				return fmt.Errorf("server s%d: %+v", i, st)
			}
			return nil
		})
	}
}

// TestClusterLosesOneServerThenTwo: with one server of three gone, appends
// and queries go on; with two gone, an append is answered unavailable
// (never a hang); when one comes back, appends resume and it catches up.
func TestClusterLosesOneServerThenTwo(t *testing.T) {
	cfgs := clusterConfigs(t, 3)
	servers := startServers(t, cfgs)
	c0, c1 := newClient(t, servers[0]), newClient(t, servers[1])
	applyOrders(t, c0)
	for i := range 5 {
		placeOrder(t, c0, fmt.Sprintf("o-%d", i), "ada", 1)
	}
	servers[2].Close()
	var last uint64
	for i := 5; i < 10; i++ {
		// Right after the loss the stream may be electing a leader: a real
		// client retries an append that was not answered.
		last = appendRetrying(t, []*client.Client{c0, c1}[i%2], fmt.Sprintf("o-%d", i))
	}
	// A projection whose read was cut by the loss resumes from its
	// checkpoint: a query may answer not_up_to_date meanwhile.
	res := queryUntilUpToDate(t, c1, last)
	if *res.Count != 10 {
		t.Fatalf("query with one server lost (min_seq %d): %s", last, countOf(res))
	}

	servers[1].Close()
	_, err := c0.WithTimeout(60*time.Second).Append("order", "o-lost", "OrderPlaced", []byte(`{"customer":"ada","total":1}`),
		client.AppendOptions{ID: "ce-o-lost"})
	wantAPIError(t, err, "unavailable")

	// Unavailable does not say the event is not stored: the leader may
	// commit it once a quorum is back. The client retries with the same
	// ce-id, and the event is stored once either way.
	back := startServers(t, cfgs[1:2])[0]
	lost := appendRetrying(t, c0, "o-lost")
	last = appendRetrying(t, c0, "o-10")
	t.Logf("o-lost at seq %d, o-10 at %d", lost, last)
	cb := newClient(t, back)
	if res = queryUntilUpToDate(t, cb, last); *res.Count != 12 {
		t.Fatalf("query on the server that came back: %s", countOf(res))
	}
	// Each ce-id once, whatever was retried.
	evs := waitCategory(t, cb, "order", 12)
	ids := map[string]uint64{}
	for _, ev := range evs {
		if prev, dup := ids[ev.ID]; dup {
			t.Fatalf("ce-id %s stored twice, at %d and %d", ev.ID, prev, ev.Seq)
		}
		ids[ev.ID] = ev.Seq
	}
	if len(evs) != 12 {
		t.Fatalf("%d events stored, want 12", len(evs))
	}
}

// appendRetrying places an order, retrying with the same ce-id while the
// node answers unavailable (a leader election), as a client would.
func appendRetrying(t testing.TB, c *client.Client, id string) uint64 {
	t.Helper()
	var seq uint64
	checkFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		r, err := c.Append("order", id, "OrderPlaced", []byte(`{"customer":"ada","total":1}`), client.AppendOptions{ID: "ce-" + id})
		if err != nil {
			return err
		}
		seq = r.Seq
		return nil
	})
	return seq
}

// TestClusterRefusesStandaloneData: a standalone node's data directory
// would lose its streams in a cluster; the server refuses to start on it.
func TestClusterRefusesStandaloneData(t *testing.T) {
	cfgs := clusterConfigs(t, 3)
	standalone := cfgs[0]
	standalone.Cluster, standalone.ServerName = nil, ""
	n := startNode(t, standalone)
	placeOrder(t, newClient(t, n), "o-1", "ada", 1)
	n.Close()
	clustered, err := node.New(cfgs[0], testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = clustered.Start(context.Background())
	clustered.Close()
	if !errors.Is(err, node.ErrStandaloneData) || !strings.Contains(err.Error(), "datamesh backup") {
		t.Fatalf("clustered start over standalone data: %v", err)
	}
}

// TestClusterExampleConfigs: deploy/examples/cluster's three servers are
// valid configs of one node.
func TestClusterExampleConfigs(t *testing.T) {
	names := map[string]bool{}
	for _, f := range []string{"s1", "s2", "s3"} {
		cfg := node.DefaultConfig()
		if err := node.LoadConfigFile(&cfg, "../deploy/examples/cluster/"+f+".yaml"); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if cfg.Name != "shop" || cfg.Cluster == nil || len(cfg.Cluster.Routes) != 3 || names[cfg.ServerName] {
			t.Fatalf("%s: %+v", f, cfg)
		}
		names[cfg.ServerName] = true
	}
}

func countOf(r *projection.Result) string {
	if r == nil || r.Count == nil {
		return "no count"
	}
	return fmt.Sprintf("count %d as of seq %d", *r.Count, r.Seq)
}

// queryUntilUpToDate counts the orders as of minSeq, asking again while
// the server answers not_up_to_date (its projection is catching up).
func queryUntilUpToDate(t testing.TB, c *client.Client, minSeq uint64) *projection.Result {
	t.Helper()
	var res *projection.Result
	checkFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		var err error
		res, err = c.Query("orders", projection.Query{Count: &projection.Filter{}, MinSeq: minSeq})
		return err
	})
	return res
}

// TestClusterServicesSignInOnEveryServer: identities and grants are the
// same on every server of a cluster.
func TestClusterServicesSignInOnEveryServer(t *testing.T) {
	cfgs := clusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].Services = []node.Service{
			{Name: "admin", Password: "admin-secret", Admin: true},
			{Name: "reader", Password: "reader-secret", Read: []string{"order"}},
		}
	}
	servers := startServers(t, cfgs)
	admin := client.New(serviceConn(t, servers[0], "admin", nil))
	applyOrderContracts(t, admin)
	placeOrder(t, admin, "o-1", "ada", 1)
	for i, s := range servers {
		if _, err := nats.Connect(s.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("server s%d: anonymous: %v", i, err)
		}
		errs := make(chan error, 8)
		p := &probe{t: t, nc: serviceConn(t, s, "reader", errs), errs: errs}
		if got := p.request("dm.read.order.o-1", nil, ""); got != ok {
			t.Fatalf("server s%d: read as reader: %s", i, got)
		}
		if got := p.request("dm.append.order.o-2", appendHeaders(), orderData); got != denied {
			t.Fatalf("server s%d: append as reader: %s", i, got)
		}
	}
}
