package node_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/embed"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// TestClusterPartitionOfOne cuts one server of three off from the other
// two, both ways (its routes go through proxies): the two go on; the one
// refuses appends with unavailable, never a hang, and answers queries
// from its projection, which stops at its last seq. Healed, it catches
// up: an append it refused, retried with its ce-id, is stored once, and
// its projection equals the others', document by document.
//
// The isolated server leads neither JetStream's meta group nor the log,
// so the two need no election and the cut itself takes about a second.
func TestClusterPartitionOfOne(t *testing.T) { testPartition(t, false) }

// TestClusterPartitionOfTheLeader is TestClusterPartitionOfOne with the
// event stream's leader cut off: the two elect another (nats-server's
// election timeouts, a few seconds), and the one's appends, which it
// cannot commit, time out as unavailable; retried with their ce-id after
// the heal, each is stored once.
func TestClusterPartitionOfTheLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a leader election")
	}
	testPartition(t, true)
}

func testPartition(t *testing.T, leader bool) {
	cfgs := clusterConfigs(t, 3)
	listens := make([]string, len(cfgs))
	for i, cfg := range cfgs {
		listens[i] = cfg.Cluster.Listen
	}
	proxies := nodetest.NewRouteProxies(t, listens)
	for i := range cfgs {
		cfgs[i].Cluster.Routes = proxies.Routes()
	}
	t0 := time.Now()
	stage := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	servers := startServers(t, cfgs)
	stage("started")
	clients := make([]*client.Client, len(servers))
	for i, s := range servers {
		clients[i] = newClient(t, s)
	}
	applyOrders(t, clients[0])
	var last uint64
	for i := range 6 {
		last = placeOrder(t, clients[i%3], fmt.Sprintf("o-%d", i), "ada", 1)
	}
	iso := pickIsolated(t, servers, leader)
	two := []int{(iso + 1) % 3, (iso + 2) % 3}
	waitApplied(t, servers[iso], last)
	before := last
	stage(fmt.Sprintf("cut s%d off", iso))
	proxies.Cut(iso, servers[iso].Server().ID())
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error { return routesTo(servers, iso, false) })

	// The two go on: an append not answered while they notice the loss
	// is retried with its ce-id, as a client would.
	for i := 6; i < 12; i++ {
		last = appendRetrying(t, clients[two[i%2]], fmt.Sprintf("o-%d", i))
	}
	stage("the two appended")
	// They answer queries. (Their projections may pause for a few
	// seconds meanwhile: a projection whose consumer the cut server held
	// makes a new one. After the heal every server has every event.)
	for _, i := range two {
		if res, err := clients[i].Query("orders", projection.Query{Count: &projection.Filter{}}); err != nil || res.Count == nil {
			t.Fatalf("count on s%d: %v", i, err)
		}
	}

	checkIsolated(t, clients[iso], before, last)

	proxies.Heal()
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error { return routesTo(servers, iso, true) })
	stage("healed")
	// The append the isolated server refused, retried with its ce-id.
	isoSeq := appendRetrying(t, clients[iso], "o-iso")
	last = appendRetrying(t, clients[iso], "o-12")
	t.Logf("after the heal: o-iso at seq %d, o-12 at %d", isoSeq, last)
	for _, s := range servers {
		waitApplied(t, s, last)
	}
	waitCount(t, clients[iso], last, 14)
	stage("every server applied every event")
	onceEach(t, waitCategory(t, clients[iso], "order", 14), 14)
	sameProjections(t, servers, cfgs, 14)
}

// onceEach checks that the log holds want events, each ce-id once.
func onceEach(t testing.TB, evs []protocol.Event, want int) {
	t.Helper()
	ids := map[string]uint64{}
	for _, ev := range evs {
		if prev, dup := ids[ev.ID]; dup {
			t.Fatalf("ce-id %s stored twice, at %d and %d", ev.ID, prev, ev.Seq)
		}
		ids[ev.ID] = ev.Seq
	}
	if len(evs) != want {
		t.Fatalf("%d events stored, want %d", len(evs), want)
	}
}

// checkIsolated checks the isolated server's answers: an append is
// refused with unavailable within the client's timeout (three times the
// node's append timeout: an error, never a hang), and queries answer from
// its projection as of before, the last seq it has.
func checkIsolated(t *testing.T, c *client.Client, before, last uint64) {
	t.Helper()
	start := time.Now()
	_, err := c.WithTimeout(3*node.DefaultAppendTimeout).Append("order", "o-iso", "OrderPlaced",
		[]byte(`{"customer":"ada","total":1}`), client.AppendOptions{ID: "ce-o-iso"})
	// Unavailable at once when the server has no leader to send it to;
	// after the append timeout when it leads but cannot commit.
	wantAPIError(t, err, "unavailable")
	t.Logf("append through the isolated server: unavailable after %v: %v", time.Since(start).Round(time.Millisecond), err)

	res, err := c.Query("orders", projection.Query{Count: &projection.Filter{}})
	if err != nil || res.Count == nil || *res.Count != 6 || res.Seq != before {
		t.Fatalf("count on the isolated server: %v, %s; want count 6 as of seq %d", err, countOf(res), before)
	}
	id := "o-0"
	if res, err := c.Query("orders", projection.Query{Get: &id, MinSeq: before}); err != nil || len(res.Doc) == 0 {
		t.Fatalf("get o-0 on the isolated server with min_seq %d: %v", before, err)
	}
	// What the two stored since is not there: a min_seq beyond it is not
	// reached.
	_, err = c.Query("orders", projection.Query{Count: &projection.Filter{}, MinSeq: last, TimeoutMS: 200})
	wantAPIError(t, err, "not_up_to_date")
}

// pickIsolated is the index of the server to cut off: the event
// stream's leader, or one that leads neither the meta group nor the
// stream (of three servers, one at least).
func pickIsolated(t testing.TB, servers []*node.Node, leader bool) int {
	t.Helper()
	iso := -1
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		leaders, follower, logLeader := 0, -1, -1
		for i, s := range servers {
			srv := s.Server()
			meta, log := srv.JetStreamIsLeader(), srv.JetStreamIsStreamLeader(embed.NodeAccount, node.DefaultStreamName)
			switch {
			case log:
				logLeader = i
				leaders++
			case meta:
				leaders++
			case follower < 0:
				follower = i
			}
		}
		if logLeader < 0 || leaders == 0 || follower < 0 {
			return fmt.Errorf("no meta and log leaders yet")
		}
		iso = follower
		if leader {
			iso = logLeader
		}
		return nil
	})
	return iso
}

// routesTo checks that server iso has routes to the others, and they to
// it, or (connected false) that it has none and the others have routes
// only to each other.
func routesTo(servers []*node.Node, iso int, connected bool) error {
	for i, s := range servers {
		rz, err := s.Server().Routez(nil)
		if err != nil {
			return err
		}
		peers := map[string]bool{}
		for _, r := range rz.Routes {
			peers[r.RemoteName] = true
		}
		want := len(servers) - 1
		if !connected && i == iso {
			want = 0
		} else if !connected {
			want = len(servers) - 2
			if peers[servers[iso].Server().Name()] {
				return fmt.Errorf("server %s still has a route to the isolated %s", s.Server().Name(), servers[iso].Server().Name())
			}
		}
		if len(peers) != want {
			return fmt.Errorf("server %s has routes to %v, want %d servers", s.Server().Name(), peers, want)
		}
	}
	return nil
}

// waitApplied waits until server s's own orders projection has applied seq.
func waitApplied(t testing.TB, s *node.Node, seq uint64) {
	t.Helper()
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		for _, st := range s.ProjectionStatuses(context.Background()) {
			if st.Name == "orders" && st.Applied >= seq {
				return nil
			}
		}
		return fmt.Errorf("server %s: orders not at seq %d: %+v", s.Server().Name(), seq, s.ProjectionStatuses(context.Background()))
	})
}

// waitCount counts the orders with min_seq, asking again until the count
// is want. (A min_seq answer can come early in a cluster: Worker.waitFor
// asks two direct gets that different replicas may answer.)
func waitCount(t testing.TB, c *client.Client, minSeq uint64, want int) {
	t.Helper()
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		res, err := c.Query("orders", projection.Query{Count: &projection.Filter{}, MinSeq: minSeq})
		if err != nil {
			return err
		}
		if res.Count == nil || *res.Count != want {
			return fmt.Errorf("min_seq %d: %s, want count %d", minSeq, countOf(res), want)
		}
		return nil
	})
}

// sameProjections closes the servers and compares their orders
// projections' files, document by document: each has want documents, and
// the same ones.
func sameProjections(t testing.TB, servers []*node.Node, cfgs []node.Config, want int) {
	t.Helper()
	spec, err := projection.Decode(readExample(t, "projection-orders.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i, s := range servers {
		if err := s.Close(); err != nil {
			t.Fatalf("close server s%d: %v", i, err)
		}
		st, err := projection.OpenStore(filepath.Join(cfgs[i].DataDir, "projections", "orders", "v1.db"), spec)
		if err != nil {
			t.Fatalf("server s%d's projection: %v", i, err)
		}
		res, err := st.Run(context.Background(), &projection.Query{List: &projection.Filter{Limit: projection.MaxListLimit}})
		st.Close()
		if err != nil {
			t.Fatalf("server s%d: list: %v", i, err)
		}
		var b bytes.Buffer
		for _, d := range res.Docs {
			fmt.Fprintf(&b, "%s %s\n", d.Key, d.Doc)
		}
		if len(res.Docs) != want {
			t.Fatalf("server s%d has %d documents, want %d:\n%s", i, len(res.Docs), want, b.String())
		}
		if i == 0 {
			first = b.String()
		} else if b.String() != first {
			t.Fatalf("server s%d's documents differ from s0's:\n%s\ns0:\n%s", i, b.String(), first)
		}
	}
	if !strings.Contains(first, "o-iso ") {
		t.Fatalf("no o-iso document:\n%s", first)
	}
}
