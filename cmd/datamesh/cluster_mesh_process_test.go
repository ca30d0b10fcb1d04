package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

// TestClusterLinkRunnerKilled: a standalone owner exports into a node of
// three server processes. The server that runs the link (the event
// stream's leader) is SIGKILLed while it imports and the owner appends:
// another server takes the link over from the replicated checkpoint and
// log, every server's log holds each of the owner's events once, in the
// owner's order; the killed server restarts and rejoins.
func TestClusterLinkRunnerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills node processes")
	}
	start := time.Now()
	orders := newNodeProcess(t, "orders", freePort(t), "billing")
	ps := clusterProcesses(t, 3, "billing", false, "orders")
	orders.apply("kind: Export\nname: all-orders\nto: [billing]\naggregates: [order]\n")
	ps[0].apply(fmt.Sprintf("kind: Link\nname: orders-in\npeer: orders\nurl: nats-leaf://%s\nexport: all-orders\n", orders.leaf))
	if err := appendOrders(orders.c, 0, 1000); err != nil {
		t.Fatal(err)
	}
	// The runner, once the link imports.
	runner := meshRunnerProcess(t, ps, func(st *protocol.MeshStatus) bool {
		return len(st.Links) == 1 && st.Links[0].Imported > 0
	})
	appended := make(chan error, 1)
	go func() { appended <- appendOrders(orders.c, 1000, 1000) }()
	runner.kill()
	t.Logf("killed the runner %s %v after start", runner.name, time.Since(start).Round(time.Millisecond))
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	owned, err := readAll(orders.c, "order")
	if err != nil || len(owned) != 2000 {
		t.Fatalf("owner's orders: %d, %v", len(owned), err)
	}
	for _, p := range ps {
		if p == runner {
			continue
		}
		checkServerImported(t, p, owned)
	}
	t.Logf("caught up on the other servers %v after start", time.Since(start).Round(time.Millisecond))
	runner.start()
	checkServerImported(t, runner, owned)
}

// checkServerImported waits until server p's log has an import of each
// owned event, then checks each is there once, in the owner's order.
func checkServerImported(t *testing.T, p *nodeProcess, owned []protocol.Event) {
	t.Helper()
	var imported []protocol.Event
	waitUntil(t, procDeadline, func() error {
		var err error
		if imported, err = readAll(p.c, "order"); err != nil {
			return err
		}
		if len(imported) < len(owned) {
			st, _ := p.c.Mesh()
			return fmt.Errorf("server %s has %d of %d imports; mesh %+v", p.name, len(imported), len(owned), st)
		}
		return nil
	})
	checkImportedOnce(t, owned, imported)
}

// TestClusterExportRunnerKilled: a node of three server processes exports
// to a standalone recipient whose link lists the three servers' leafnode
// URLs. The server that runs the export is SIGKILLed while clients append
// (retrying with their ce-ids what was not answered): another server
// takes the export over, and the recipient's log holds each of the
// owner's events once, in the owner's order.
func TestClusterExportRunnerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills node processes")
	}
	ps := clusterProcesses(t, 3, "orders", true, "billing")
	billing := newNodeProcess(t, "billing", "", "orders")
	leafs := make([]string, len(ps))
	for i, p := range ps {
		leafs[i] = "nats-leaf://" + p.leaf
	}
	ps[0].apply("kind: Export\nname: all-orders\nto: [billing]\naggregates: [order]\n")
	billing.apply(fmt.Sprintf("kind: Link\nname: orders-in\npeer: orders\nurl: %s\nexport: all-orders\n", strings.Join(leafs, ",")))
	a := &acks{seqs: map[string]uint64{}}
	deadline := time.Now().Add(3 * time.Minute)
	for i := range 500 {
		if err := appendUntilAcked(ps[i%3].c, fmt.Sprintf("o-%d", i), a, deadline); err != nil {
			t.Fatal(err)
		}
	}
	runner := meshRunnerProcess(t, ps, func(st *protocol.MeshStatus) bool {
		return len(st.Exports) == 1 && st.Exports[0].ExportedSeq > 0
	})
	var urls []string
	for _, p := range ps {
		if p != runner {
			urls = append(urls, "nats://"+p.listen)
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc).WithTimeout(5 * time.Second)
	appended := make(chan error, 1)
	go func() {
		for i := 500; i < 1500; i++ {
			if err := appendUntilAcked(c, fmt.Sprintf("o-%d", i), a, deadline); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	runner.kill()
	t.Logf("killed the export's runner %s after %d acks", runner.name, a.count())
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	owned, err := readAll(c, "order")
	if err != nil || len(owned) != 1500 {
		t.Fatalf("owner's orders: %d, %v (want each of the 1500 acknowledged once)", len(owned), err)
	}
	checkServerImported(t, billing, owned)
}

// meshRunnerProcess waits until the mesh status (asked of any server)
// satisfies ready and returns the server that runs the mesh.
func meshRunnerProcess(t *testing.T, ps []*nodeProcess, ready func(*protocol.MeshStatus) bool) *nodeProcess {
	t.Helper()
	var runner *nodeProcess
	waitUntil(t, procDeadline, func() error {
		st, err := ps[1].c.Mesh()
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.name == st.Server && ready(st) {
				runner = p
				return nil
			}
		}
		return fmt.Errorf("mesh status %+v", st)
	})
	return runner
}
