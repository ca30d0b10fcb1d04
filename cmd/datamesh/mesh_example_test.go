package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
)

const meshExample = "../../deploy/examples/mesh/"

// TestMeshExample runs deploy/examples/mesh as the README shows it: three
// nodes from their config files (on random ports here), the resources
// applied with the CLI, orders flowing to billing and shipping, and
// invoices from billing to shipping.
func TestMeshExample(t *testing.T) {
	nodes := startMeshExample(t)
	applyMeshExample(t, nodes)

	mustCLI(t, nodes["orders"], "append", "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30,"email":"c1@example.com"}`)
	mustCLI(t, nodes["orders"], "append", "order", "o-2", "OrderPlaced", `{"customer":"c-2","total":0}`)
	mustCLI(t, nodes["orders"], "append", "order", "o-1", "OrderShipped", `{"carrier":"ups"}`)

	checkMeshExampleFlow(t, nodes)
	checkMeshExampleCLI(t, nodes)
}

// startMeshExample starts the example's three nodes from their config
// files, on random ports, and returns them by name.
func startMeshExample(t testing.TB) map[string]*node.Node {
	t.Helper()
	nodes := map[string]*node.Node{}
	for _, name := range []string{"orders", "billing", "shipping"} {
		cfg := node.DefaultConfig()
		if err := node.LoadConfigFile(&cfg, meshExample+name+".yaml"); err != nil {
			t.Fatal(err)
		}
		cfg.DataDir, cfg.Listen, cfg.HTTP, cfg.LeafListen = t.TempDir(), "127.0.0.1:-1", "", "127.0.0.1:-1"
		n, err := node.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[name] = n
	}
	return nodes
}

// applyMeshExample applies each node's resources with the CLI. mustCLI
// takes a *testing.T, so this does too.
func applyMeshExample(t *testing.T, nodes map[string]*node.Node) {
	t.Helper()
	// The example's links name the default leafnode ports; point them at
	// this test's random ones.
	ports := strings.NewReplacer(
		"nats-leaf://127.0.0.1:7422", nodes["orders"].LeafURL(),
		"nats-leaf://127.0.0.1:7423", nodes["billing"].LeafURL(),
	)
	resources := func(file string) string {
		b, err := os.ReadFile(meshExample + file)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), file)
		if err := os.WriteFile(path, []byte(ports.Replace(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	out := mustCLI(t, nodes["orders"], "apply", "-f", "../../deploy/examples/orders/contracts.yaml", "-f", resources("orders-resources.yaml"))
	if !strings.Contains(out, "export/public-orders created") {
		t.Fatalf("apply on orders printed %q", out)
	}
	out = mustCLI(t, nodes["billing"], "apply", "-f", resources("billing-resources.yaml"))
	if want := "eventtype/invoice.InvoiceRequested v1 created\nprojection/invoices v1 created\nexport/invoices created\nlink/orders-to-billing created\n"; out != want {
		t.Fatalf("apply on billing printed\n%s\nwant\n%s", out, want)
	}
	mustCLI(t, nodes["shipping"], "apply", "-f", resources("shipping-resources.yaml"))
}

// checkMeshExampleFlow waits for the appended orders to reach billing and
// shipping, and for billing's invoice to reach shipping.
func checkMeshExampleFlow(t *testing.T, nodes map[string]*node.Node) {
	t.Helper()
	// billing: one invoice (o-2 has nothing to pay), without the e-mail.
	poll(t, func() error {
		out, err := cli(t, nodes["billing"], "", "query", "invoices", "get", "o-1")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"amount":30`) || strings.Contains(out, "c1@example.com") {
			return fmt.Errorf("invoice: %s", out)
		}
		return nil
	})
	// shipping: o-1 planned, invoiced and gone; o-2 planned only.
	poll(t, func() error {
		out, err := cli(t, nodes["shipping"], "", "query", "shipments", "get", "o-1")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"status":"left"`) || !strings.Contains(out, `"amount":30`) || !strings.Contains(out, `"carrier":"ups"`) {
			return fmt.Errorf("shipment o-1: %s", out)
		}
		return nil
	})
	out := mustCLI(t, nodes["shipping"], "query", "shipments", "get", "o-2")
	if !strings.Contains(out, `"status":"planned"`) {
		t.Fatalf("shipment o-2: %s", out)
	}
}

// checkMeshExampleCLI runs the mesh commands the README shows on shipping:
// status, the mesh catalog, dead letters, replay and deleting a link.
func checkMeshExampleCLI(t *testing.T, nodes map[string]*node.Node) {
	t.Helper()
	out := mustCLI(t, nodes["shipping"], "status")
	for _, want := range []string{"orders-to-shipping", "billing-to-shipping", "LINK"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	out = mustCLI(t, nodes["shipping"], "catalog", "--mesh")
	for _, want := range []string{"peer billing", "peer orders", "OrderPlaced", "InvoiceRequested"} {
		if !strings.Contains(out, want) {
			t.Fatalf("catalog --mesh lacks %q:\n%s", want, out)
		}
	}
	out = mustCLI(t, nodes["shipping"], "link", "dead-letters", "billing-to-shipping")
	if !strings.HasPrefix(out, "EXPORT SEQ") {
		t.Fatalf("link dead-letters: %s", out)
	}
	if out = mustCLI(t, nodes["shipping"], "link", "replay", "billing-to-shipping"); out != "replayed 0, filtered 0, failed 0\n" {
		t.Fatalf("link replay: %q", out)
	}
	if out = mustCLI(t, nodes["shipping"], "delete", "link", "billing-to-shipping"); out != "link billing-to-shipping deleted\n" {
		t.Fatalf("delete link: %q", out)
	}
	out = mustCLI(t, nodes["shipping"], "status")
	if strings.Contains(out, "billing-to-shipping") || !strings.Contains(out, "orders-to-shipping") {
		t.Fatalf("status after delete:\n%s", out)
	}
}

// poll retries fn until it succeeds or 30 s pass.
func poll(t testing.TB, fn func() error) {
	t.Helper()
	nodetest.CheckFor(t, 30*time.Second, 20*time.Millisecond, fn)
}
