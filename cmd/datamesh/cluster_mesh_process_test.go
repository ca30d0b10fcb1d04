package main

import (
	"fmt"
	"testing"
	"time"

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
	var runner *nodeProcess
	waitUntil(t, procDeadline, func() error {
		st, err := ps[1].c.Mesh()
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.name == st.Server && len(st.Links) == 1 && st.Links[0].Imported > 0 {
				runner = p
				return nil
			}
		}
		return fmt.Errorf("mesh status %+v", st)
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
