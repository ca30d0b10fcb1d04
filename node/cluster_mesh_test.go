package node_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

// meshCluster starts a three-server node called name that shares events
// with peers, and a client on each server.
func meshCluster(t testing.TB, name string, peers ...string) ([]*node.Node, []*client.Client) {
	cfgs := clusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].Name = name
		cfgs[i].Peers = map[string]node.Peer{}
		for _, p := range peers {
			cfgs[i].Peers[p] = node.Peer{Secret: testSecret}
		}
	}
	servers := startServers(t, cfgs)
	clients := make([]*client.Client, len(servers))
	for i, s := range servers {
		clients[i] = newClient(t, s)
	}
	return servers, clients
}

// leafURLs is every server's leafnode URL, comma separated: a link's url
// to a clustered peer.
func leafURLs(servers []*node.Node) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.LeafURL()
	}
	return strings.Join(urls, ",")
}

// meshRunner waits until one server of the cluster runs the mesh and
// every status, whichever server the request reaches, is its; it returns
// that server's index.
func meshRunner(t testing.TB, servers []*node.Node, c *client.Client) int {
	t.Helper()
	runner := -1
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		st, err := c.Mesh()
		if err != nil {
			return err
		}
		for i, s := range servers {
			if s.ServerName() == st.Server {
				runner = i
				return nil
			}
		}
		return fmt.Errorf("mesh status from server %q", st.Server)
	})
	return runner
}

// appendDuring places orders through clients, one after the other,
// retrying each with its ce-id until acknowledged, until stop is closed;
// it returns how many it placed.
func appendDuring(t testing.TB, clients []*client.Client, from int, stop <-chan struct{}) <-chan int {
	done := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			id := fmt.Sprintf("o-%d", from+n)
			if err := appendUntilAcked(clients[n%len(clients)], id); err != nil {
				t.Errorf("append %s: %v", id, err)
				done <- n
				return
			}
			n++
		}
	}()
	return done
}

// appendUntilAcked retries an append with the same ce-id until it is
// acknowledged (a duplicate answer counts).
func appendUntilAcked(c *client.Client, id string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.Append("order", id, "OrderPlaced", []byte(`{"customer":{"name":"ada"},"total":1}`), client.AppendOptions{ID: "ce-" + id})
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// TestClusterExportSurvivesItsRunner: a clustered owner exports to a
// standalone recipient, whose link lists every server's leaf URL. The
// server that runs the export is stopped while events are appended: the
// stream's new leader takes the export over, and the recipient's log is
// exactly the owner's events, once each, in order.
func TestClusterExportSurvivesItsRunner(t *testing.T) {
	servers, clients := meshCluster(t, "orders", "billing")
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	bc := newClient(t, billing)
	apply(t, clients[0], exportYAML("all-orders", "billing", "order", "", ""))
	apply(t, bc, linkYAML("orders-in", "orders", leafURLs(servers), "all-orders", ""))
	placeOrders(t, clients[1], 0, 50)
	waitCategory(t, bc, "order", 50)

	runner := meshRunner(t, servers, clients[0])
	var others []*client.Client
	for i, c := range clients {
		if i != runner {
			others = append(others, c)
		}
	}
	stop := make(chan struct{})
	placed := appendDuring(t, others, 50, stop)
	before := len(waitCategory(t, bc, "order", 80))
	servers[runner].Close()
	// Another server runs the export now: status through the others says so.
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		st, err := others[0].Mesh()
		if err != nil {
			return err
		}
		if st.Server == servers[runner].ServerName() || st.Server == "" {
			return fmt.Errorf("mesh still on %q", st.Server)
		}
		return nil
	})
	// Exports go on from the new runner while the appends go on; the
	// export says the peer is connected, whichever server its leafnode
	// is on.
	waitCategory(t, bc, "order", before+30)
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		st, err := others[1].Mesh()
		if err != nil || len(st.Exports) != 1 || !st.Exports[0].Connected {
			return fmt.Errorf("export status: %v %+v", err, st)
		}
		return nil
	})
	close(stop)
	total := 50 + <-placed
	checkExactlyOnce(t, waitCategory(t, bc, "order", total), total)
}

// TestClusterLinkSurvivesItsRunner: a standalone owner exports into a
// clustered recipient. The server that runs the link is stopped while the
// owner appends: another server takes the link over from its replicated
// checkpoint, nothing is imported twice, and every server's log has it.
func TestClusterLinkSurvivesItsRunner(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing"))
	oc := newClient(t, orders)
	servers, clients := meshCluster(t, "billing", "orders")
	apply(t, oc, exportYAML("all-orders", "billing", "order", "", ""))
	apply(t, clients[2], linkYAML("orders-in", "orders", orders.LeafURL(), "all-orders", ""))
	placeOrders(t, oc, 0, 50)
	waitCategory(t, clients[0], "order", 50)

	runner := meshRunner(t, servers, clients[1])
	var live []*client.Client
	for i, c := range clients {
		if i != runner {
			live = append(live, c)
		}
	}
	stop := make(chan struct{})
	placed := appendDuring(t, []*client.Client{oc}, 50, stop)
	before := len(waitCategory(t, live[0], "order", 80))
	servers[runner].Close()
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		l, err := clusterLinkStatus(live[0], "orders-in")
		if err != nil {
			return err
		}
		if l.State != "importing" || !l.Connected {
			return fmt.Errorf("link after its runner stopped: %+v", l)
		}
		return nil
	})
	waitCategory(t, live[1], "order", before+30)
	close(stop)
	total := 50 + <-placed
	for _, c := range live {
		checkExactlyOnce(t, waitCategory(t, c, "order", total), total)
	}
	// The dead letters and the link's checkpoint are the cluster's: a
	// retry asked of any server reaches the one that runs the link.
	if err := live[1].RetryLink("orders-in"); err != nil {
		t.Fatalf("retry through a server that does not run the link: %v", err)
	}
}

// clusterLinkStatus is one link's status, asked of any server.
func clusterLinkStatus(c *client.Client, name string) (protocol.LinkStatus, error) {
	st, err := c.Mesh()
	if err != nil {
		return protocol.LinkStatus{}, err
	}
	i := slices.IndexFunc(st.Links, func(l protocol.LinkStatus) bool { return l.Name == name })
	if i < 0 {
		return protocol.LinkStatus{}, fmt.Errorf("no link %s in %+v", name, st)
	}
	return st.Links[i], nil
}

// TestClusterMeshRequestsReachTheRunner: mesh status, retry and replay
// asked of any server are answered by the one that runs the mesh; with no
// runner they fail at once with unavailable, never a timeout.
func TestClusterMeshRequestsReachTheRunner(t *testing.T) {
	servers, clients := meshCluster(t, "orders", "billing")
	apply(t, clients[0], exportYAML("all-orders", "billing", "order", "", ""))
	runner := meshRunner(t, servers, clients[0])
	// The runner learns of an export applied through another server from
	// the registry's watch, moments later.
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		st, err := clients[0].Mesh()
		if err != nil || len(st.Exports) != 1 || st.Exports[0].State == "standby" {
			return fmt.Errorf("status: %v %+v", err, st)
		}
		return nil
	})
	for i, c := range clients {
		st, err := c.Mesh()
		if err != nil || st.Server != servers[runner].ServerName() || len(st.Exports) != 1 || st.Exports[0].State == "standby" {
			t.Fatalf("status through s%d: %v %+v", i, err, st)
		}
	}
	err := clients[(runner+1)%3].RetryLink("nope")
	wantAPIError(t, err, protocol.CodeNotFound)
	// Two servers stopped: no stream leader, so no runner.
	for i := range servers {
		if i != runner {
			servers[i].Close()
		}
	}
	var last error
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		_, last = clients[runner].Mesh()
		if last == nil {
			return errors.New("the mesh still answers with no quorum")
		}
		return nil
	})
	wantAPIError(t, last, protocol.CodeUnavailable)
}
