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

// TestReadmeMeshExample runs deploy/examples/mesh as the README shows it: three
// nodes from their config files (on random ports here), then the README's
// transcript of "Linking nodes" (the resources applied with the CLI, an
// order placed and shipped on orders, the invoice on billing, the shipment
// on shipping fed by both, status, the mesh catalog, dead letters, replay
// and deleting a link), then what the README does not show: an order the
// billing link filters out, and shipping still fed by orders.
func TestReadmeMeshExample(t *testing.T) {
	nodes := startMeshExample(t)
	lines, first := readmeSection(t, "Linking nodes")
	runTranscript(t, meshReadmeEnv(t, nodes), "Linking nodes", lines, first)
	checkMeshExampleFilter(t, nodes)
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

// meshReadmeEnv maps the README's ports to the three nodes': the example's
// client ports (orders, the default, 4222; billing 4223; shipping 4224), its
// resource files (whose links name the leafnode ports 7422 and 7423), and
// the leafnode URLs in the output.
func meshReadmeEnv(t *testing.T, nodes map[string]*node.Node) *readmeEnv {
	return &readmeEnv{
		servers: map[string]string{
			"":                      nodes["orders"].ClientURL(),
			"nats://127.0.0.1:4222": nodes["orders"].ClientURL(),
			"nats://127.0.0.1:4223": nodes["billing"].ClientURL(),
			"nats://127.0.0.1:4224": nodes["shipping"].ClientURL(),
		},
		files: func(p string) string {
			if strings.HasPrefix("../../"+p, meshExample) && strings.HasSuffix(p, "-resources.yaml") {
				return meshResourceFile(t, nodes, filepath.Base(p))
			}
			return "../../" + p
		},
		ports: strings.NewReplacer(
			nodes["orders"].LeafURL(), "nats-leaf://127.0.0.1:7422",
			nodes["billing"].LeafURL(), "nats-leaf://127.0.0.1:7423",
		),
		wait: 20 * time.Second,
	}
}

// meshResourceFile writes a copy of the example's resource file whose links
// name this test's random leafnode ports instead of the default ones, and
// returns its path.
func meshResourceFile(t testing.TB, nodes map[string]*node.Node, file string) string {
	t.Helper()
	ports := strings.NewReplacer(
		"nats-leaf://127.0.0.1:7422", nodes["orders"].LeafURL(),
		"nats-leaf://127.0.0.1:7423", nodes["billing"].LeafURL(),
	)
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

// checkMeshExampleFilter runs after the README's transcript, which deleted
// billing-to-shipping: an order with nothing to pay reaches shipping but
// not billing (its link's filter), and shipping's status lists only the
// link left.
func checkMeshExampleFilter(t *testing.T, nodes map[string]*node.Node) {
	t.Helper()
	mustCLI(t, nodes["orders"], "append", "order", "o-2", "OrderPlaced", `{"customer":"c-2","total":0}`)
	poll(t, func() error {
		out, err := cli(t, nodes["shipping"], "", "query", "shipments", "get", "o-2")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"status":"planned"`) {
			return fmt.Errorf("shipment o-2: %s", out)
		}
		return nil
	})
	// billing's link saw o-2 and filtered it out, as it did o-1's
	// OrderShipped: one invoice only.
	poll(t, func() error {
		for _, l := range nodes["billing"].MeshStatus().Links {
			if l.Name == "orders-to-billing" && (l.Imported != 1 || l.Filtered != 2) {
				return fmt.Errorf("orders-to-billing imported %d, filtered %d; want 1 and 2", l.Imported, l.Filtered)
			}
		}
		return nil
	})
	out := mustCLI(t, nodes["shipping"], "status")
	if strings.Contains(out, "billing-to-shipping") || !strings.Contains(out, "orders-to-shipping") {
		t.Fatalf("status after delete:\n%s", out)
	}
}

// poll retries fn until it succeeds or 30 s pass.
func poll(t testing.TB, fn func() error) {
	t.Helper()
	nodetest.CheckFor(t, 30*time.Second, 20*time.Millisecond, fn)
}
