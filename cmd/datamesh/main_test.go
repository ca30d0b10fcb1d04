package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

func startNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Name = "cli"
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:-1"
	cfg.HTTP = ""
	cfg.LeafListen = ""
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// cli runs the datamesh command with args against n and returns its output.
func cli(t *testing.T, n *node.Node, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	if n != nil {
		args = append(args, "--server", n.ClientURL())
	}
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

func mustCLI(t *testing.T, n *node.Node, args ...string) string {
	t.Helper()
	out, err := cli(t, n, "", args...)
	if err != nil {
		t.Fatalf("datamesh %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestWalkThrough(t *testing.T) {
	n := startNode(t)
	out := mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/")
	want := "eventtype/order.OrderPlaced v1 created\neventtype/order.ItemAdded v1 created\neventtype/order.OrderShipped v1 created\neventtype/order.OrderCancelled v1 created\nprojection/orders v1 created\n"
	if out != want {
		t.Fatalf("apply printed\n%s\nwant\n%s", out, want)
	}
	out = mustCLI(t, n, "append", "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`, "--expect", "0")
	if out != "appended order/o-1 OrderPlaced at seq 1\n" {
		t.Fatalf("append printed %q", out)
	}
	out, err := cli(t, n, `{"carrier":"ups"}`, "append", "order", "o-1", "OrderShipped", "-", "--id", "ship-1")
	if err != nil || out != "appended order/o-1 OrderShipped at seq 2\n" {
		t.Fatalf("append from stdin printed %q (%v)", out, err)
	}
	out = mustCLI(t, n, "append", "order", "o-1", "OrderShipped", "--id", "ship-1")
	if !strings.Contains(out, "at seq 2 (duplicate") {
		t.Fatalf("duplicate append printed %q", out)
	}

	_, err = cli(t, n, "", "append", "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`, "--expect", "0")
	if err == nil || !strings.Contains(err.Error(), "version_conflict") || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("got %v, want a version conflict naming version 2", err)
	}
	_, err = cli(t, n, "", "append", "order", "o-2", "OrderPlaced", `{"total":"lots"}`)
	if err == nil || !strings.Contains(err.Error(), "schema_violation") {
		t.Fatalf("got %v, want a schema violation", err)
	}

	out = mustCLI(t, n, "read", "order", "o-1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.HasPrefix(lines[1], "1 ") || !strings.Contains(lines[2], "OrderShipped") {
		t.Fatalf("read printed\n%s", out)
	}
	out = mustCLI(t, n, "read", "order", "--json")
	var rr protocol.ReadReply
	if err := json.Unmarshal([]byte(out), &rr); err != nil || len(rr.Events) != 2 {
		t.Fatalf("read --json printed %s (%v)", out, err)
	}

	out = mustCLI(t, n, "catalog")
	if !strings.Contains(out, "node cli") || !strings.Contains(out, "OrderPlaced") || !strings.Contains(out, "team-orders") {
		t.Fatalf("catalog printed\n%s", out)
	}

	// The orders projection answers by key, index and count.
	out = mustCLI(t, n, "query", "orders", "get", "o-1", "--min-seq", "2")
	if out != `{"customer":"c-1","items":[],"placed_at":"`+rr.Events[0].Time+`","status":"shipped","total":30}`+"\n" {
		t.Fatalf("query get printed %q", out)
	}
	out = mustCLI(t, n, "query", "orders", "list", "--index", "by_status", "--eq", "shipped")
	if !strings.HasPrefix(out, "KEY") || !strings.Contains(out, "o-1") {
		t.Fatalf("query list printed\n%s", out)
	}
	if out = mustCLI(t, n, "query", "orders", "count", "--index", "by_total", "--gte", "31"); out != "0\n" {
		t.Fatalf("query count printed %q", out)
	}
	out = mustCLI(t, n, "status")
	if !strings.HasPrefix(out, "PROJECTION") || !strings.Contains(out, "orders") || !strings.Contains(out, "live") {
		t.Fatalf("status printed\n%s", out)
	}
	if _, err := cli(t, n, "", "query", "orders", "list", "--index", "nope"); err == nil || !strings.Contains(err.Error(), "bad_request") {
		t.Fatalf("got %v, want bad_request", err)
	}

	_, err = cli(t, n, "", "apply", "-f", "../../deploy/examples/orders/changes/orderplaced-v2-breaking.yaml")
	if err == nil || !strings.Contains(err.Error(), `field "/email" became required`) {
		t.Fatalf("got %v, want the incompatibility reason", err)
	}
}

func TestClientErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = cli(t, nil, "", "catalog", "--server", "nats://"+addr, "--timeout", "500ms")
	if err == nil || !strings.Contains(err.Error(), "cannot reach a DataMesh node") {
		t.Fatalf("got %v, want a connection error", err)
	}
	n := startNode(t)
	if _, err := cli(t, n, "", "append", "order", "o-1"); err == nil {
		t.Fatal("append without a type: got no error")
	}
	if _, err := cli(t, n, "", "apply"); err == nil || !strings.Contains(err.Error(), "-f") {
		t.Fatalf("got %v, want apply to ask for -f", err)
	}
	_, err = cli(t, n, "", "append", "order", "o-1", "X", "@/does/not/exist")
	if err == nil || !strings.Contains(err.Error(), "read data") {
		t.Fatalf("got %v, want a read data error", err)
	}
}

func TestNodeConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(file, []byte("name: from-file\ndata: /file/data\nlisten: 127.0.0.1:5000\ndedup_window: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATAMESH_DATA", "/env/data")
	var f nodeFlags
	cmd := &cobra.Command{}
	f.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", file, "--listen", "127.0.0.1:6000"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Config(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "from-file" || cfg.DataDir != "/env/data" || cfg.Listen != "127.0.0.1:6000" || time.Duration(cfg.DedupWindow) != time.Minute {
		t.Fatalf("got name %q data %q listen %q dedup %v; want file, env, flag, file", cfg.Name, cfg.DataDir, cfg.Listen, time.Duration(cfg.DedupWindow))
	}
	if err := os.WriteFile(file, []byte("nmae: typo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Config(cmd.Flags()); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Fatalf("got %v, want the unknown key named", err)
	}
}

func TestNodeCommandRunsAndStops(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"node", "--name", "cmdtest", "--data", t.TempDir(), "--listen", port, "--http", "", "--leaf-listen", ""}, nil, &bytes.Buffer{}, &logs)
	}()
	nodetest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		nc, err := nats.Connect("nats://"+port, nats.Timeout(200*time.Millisecond))
		if err != nil {
			return err
		}
		defer nc.Close()
		_, err = nc.Request("dm.discovery", nil, time.Second)
		return err
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node did not stop after its context ended")
	}

	// The same port taken: a one-line error, no panic.
	l, err := net.Listen("tcp", port)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = run(context.Background(), []string{"node", "--name", "x", "--data", t.TempDir(), "--listen", port, "--http", "", "--leaf-listen", ""}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %q, want one line saying the address is in use", err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}

func TestPrintErrorListsViolations(t *testing.T) {
	n := startNode(t)
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/contracts.yaml")
	_, err := cli(t, n, "", "append", "order", "o-1", "OrderPlaced", `{"total":-1}`)
	var buf bytes.Buffer
	printError(&buf, err)
	want := "error: schema_violation: data does not satisfy contract order.OrderPlaced (2 violations): missing property 'customer'\n" +
		"  /: missing property 'customer'\n" +
		"  /total: minimum: got -1, want 0\n"
	if buf.String() != want {
		t.Fatalf("printed\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestUpgradeCommands(t *testing.T) {
	n := startNode(t)
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/")
	mustCLI(t, n, "append", "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`)
	mustCLI(t, n, "append", "order", "o-1", "ItemAdded", `{"sku":"a","price":2}`)
	v2 := "../../deploy/examples/orders/changes/projection-orders-v2.yaml"
	out := mustCLI(t, n, "apply", "-f", v2, "--wait", "--promote")
	want := "projection/orders v2 created\nprojection orders v2 is live at seq 2\nprojection orders: v2 is active (was v1)\n"
	if out != want {
		t.Fatalf("apply --wait --promote printed\n%s\nwant\n%s", out, want)
	}
	if out = mustCLI(t, n, "query", "orders", "get", "o-1"); !strings.Contains(out, `"item_count":1`) {
		t.Fatalf("the alias did not answer from v2: %s", out)
	}
	if out = mustCLI(t, n, "projection", "rollback", "orders"); out != "projection orders: v1 is active again (was v2)\n" {
		t.Fatalf("rollback printed %q", out)
	}
	if _, err := cli(t, n, "", "projection", "retire", "orders", "1"); err == nil || !strings.Contains(err.Error(), "active") {
		t.Fatalf("got %v, want retire of the active version refused", err)
	}
	mustCLI(t, n, "projection", "promote", "orders", "v2")
	if out = mustCLI(t, n, "projection", "retire", "orders", "1"); out != "projection orders: v1 retired\n" {
		t.Fatalf("retire printed %q", out)
	}
	out = mustCLI(t, n, "status")
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "100%") {
		t.Fatalf("status printed\n%s", out)
	}
}

func TestTrimFloat(t *testing.T) {
	for v, want := range map[float64]string{23390: "23390", 100: "100", 64.34: "64.34", 3.5: "3.5", 2: "2", 0.25: "0.25"} {
		if got := trimFloat(v); got != want {
			t.Errorf("trimFloat(%v) = %q, want %q", v, got, want)
		}
	}
}
