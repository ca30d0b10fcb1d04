package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/node"
)

// TestBackupAndRestoreCommands backs a node up with the CLI, restores the
// file into a new directory, and reads the same events from a node
// started on it; both commands refuse to overwrite.
func TestBackupAndRestoreCommands(t *testing.T) {
	n := startNode(t)
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/")
	mustCLI(t, n, "append", "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`)
	mustCLI(t, n, "append", "order", "o-1", "OrderShipped", `{"carrier":"ups"}`)
	before := mustCLI(t, n, "read", "order", "--json")

	file := filepath.Join(t.TempDir(), "cli.dmbackup")
	out := mustCLI(t, n, "backup", "--out", file)
	if !strings.HasPrefix(out, "backup of node cli written to "+file+": ") || !strings.Contains(out, "sha256 ") ||
		!strings.Contains(out, "EVENTS") || !strings.Contains(out, "KV_datamesh_registry") {
		t.Fatalf("backup printed\n%s", out)
	}
	sum := strings.Fields(out[strings.Index(out, "sha256 "):])[1]
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("%s.partial left behind: %v", file, err)
	}
	if _, err := cli(t, n, "", "backup", "--out", file); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("backup over an existing file: got %v, want a refusal", err)
	}

	dir := filepath.Join(t.TempDir(), "data")
	out = mustCLI(t, nil, "restore", "--in", file, "--data", dir, "--sha256", sum)
	if !strings.HasPrefix(out, "restored node cli ") || !strings.Contains(out, "datamesh node --name cli --data "+dir) {
		t.Fatalf("restore printed\n%s", out)
	}
	if _, err := cli(t, nil, "", "restore", "--in", file, "--data", dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a used directory: got %v, want a refusal", err)
	}

	n.Close()
	cfg := node.DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.Listen, cfg.HTTP, cfg.LeafListen = "cli", dir, "127.0.0.1:-1", "", ""
	restored, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := restored.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restored.Close() })
	if after := mustCLI(t, restored, "read", "order", "--json"); after != before {
		t.Fatalf("restored node reads\n%s\nwant\n%s", after, before)
	}
}
