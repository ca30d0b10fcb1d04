package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
)

// TestLoadConfigFileErrors: a config file error names the file, the line
// and the column, suggests the key meant, and never says "json".
func TestLoadConfigFileErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "name: shop\n\nlistn: 0.0.0.0:4222\n", `:3:1: unknown field "listn" in config (did you mean "listen"?)`},
		{"wrong case", "Name: shop\n", `:1:1: unknown field "Name" in config (did you mean "name"?)`},
		{"nested unknown key", "peers:\n  b:\n    secrt: 12345678\n", `:3:5: unknown field "secrt" in peers.b (did you mean "secret"?)`},
		{"not a number", "max_batch: lots\n", `:1:12: max_batch: want an integer, got "lots"`},
		{"bad duration", "dedup_window: 5x\n", `:1:15: dedup_window: invalid duration "5x"`},
		{"number for a string", "peers: {b: {secret: 12345678}}\n", `:1:21: peers.b.secret: want a string, got the number 12345678 (quote it: "12345678")`},
		{"not a mapping", "peers: [a, b]\n", `:1:8: peers: want a mapping, got a list`},
		{"YAML syntax", "name: [shop\n", `:1: did not find expected ',' or ']'`},
		{"duplicate key", "name: a\nname: b\n", `:2: mapping key "name" already defined at line 1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "typo.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := node.DefaultConfig()
			err := node.LoadConfigFile(&cfg, path)
			if err == nil || err.Error() != path+tc.want {
				t.Fatalf("got %v, want %s", err, path+tc.want)
			}
			if strings.Contains(err.Error(), "json") {
				t.Fatalf("%v says json", err)
			}
		})
	}
}

func TestLoadConfigFileOverlays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.yaml")
	doc := "name: shop\nmax_batch: 10\ndedup_window: 10m\npeers: {b: {secret: \"12345678\"}}\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	if err := node.LoadConfigFile(&cfg, path); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "shop" || cfg.MaxBatch != 10 || time.Duration(cfg.DedupWindow) != 10*time.Minute ||
		cfg.Peers["b"].Secret != "12345678" || cfg.Listen != node.DefaultListen {
		t.Fatalf("got %+v", cfg)
	}
}
