package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
)

// TestRestoreCommandIntoCluster moves a standalone node into a new
// three-server cluster with the CLI, as docs/cluster.md shows: datamesh
// backup against the standalone node, datamesh restore --server against
// one server of the cluster; another server then reads the same events
// and answers from the rebuilt projection.
func TestRestoreCommandIntoCluster(t *testing.T) {
	n := startNode(t)
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/")
	mustCLI(t, n, "append", "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`)
	mustCLI(t, n, "append", "order", "o-1", "OrderShipped", `{"carrier":"ups"}`)
	before := mustCLI(t, n, "read", "order", "--json")
	file := t.TempDir() + "/cli.dmbackup"
	out := mustCLI(t, n, "backup", "--out", file)
	sum := strings.Fields(out[strings.Index(out, "sha256 "):])[1]
	n.Close()

	if _, err := cli(t, nil, "", "restore", "--in", file); err == nil || !strings.Contains(err.Error(), "--data DIR") || !strings.Contains(err.Error(), "--server URL") {
		t.Fatalf("restore with neither --data nor --server: %v, want both named", err)
	}
	servers := startCluster(t, "cli", 3)
	out = mustCLI(t, servers[1], "restore", "--in", file, "--sha256", sum)
	for _, want := range []string{"restored node cli ", "sha256 " + sum, "EVENTS", "datamesh_registry", "every server now rebuilds"} {
		if !strings.Contains(out, want) {
			t.Fatalf("restore printed\n%s\nwant %q in it", out, want)
		}
	}
	if got := mustCLI(t, servers[2], "read", "order", "--json"); got != before {
		t.Fatalf("the cluster reads\n%s\nthe standalone node read\n%s", got, before)
	}
	got := mustCLI(t, servers[0], "query", "orders", "get", "o-1", "--min-seq", "2")
	if !strings.Contains(got, `"status":"shipped"`) {
		t.Fatalf("query on the cluster: %s", got)
	}
	// The cluster is not empty any more: a second restore is refused.
	if _, err := cli(t, servers[0], "", "restore", "--in", file); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("second restore: %v, want a conflict", err)
	}
}

// startCluster starts a node called name as n in-process servers on
// loopback, each waiting for a quorum, and closes them at the end.
func startCluster(t *testing.T, name string, n int) []*node.Node {
	t.Helper()
	routes := make([]string, n)
	listens := make([]string, n)
	for i := range n {
		listens[i] = freePort(t)
		routes[i] = "nats-route://" + listens[i]
	}
	nodes := make([]*node.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := node.DefaultConfig()
		cfg.Name, cfg.ServerName, cfg.DataDir = name, fmt.Sprintf("s%d", i), t.TempDir()
		cfg.Listen, cfg.HTTP, cfg.LeafListen = "127.0.0.1:-1", "", ""
		cfg.Cluster = &node.Cluster{Listen: listens[i], Routes: routes}
		s, err := node.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = s
		t.Cleanup(func() { s.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs[i] = s.Start(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start server s%d: %v", i, err)
		}
	}
	return nodes
}
