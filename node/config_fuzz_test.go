package node_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/node"
)

// FuzzLoadConfig loads fuzzed config files over the defaults: an error
// names the file; a loaded config re-encodes to one that loads equal, and
// Validate answers (with every problem) rather than panics.
func FuzzLoadConfig(f *testing.F) {
	f.Add("name: shop\nlisten: 127.0.0.1:4222\ndata: ./data\ndurability: fsync\n")
	f.Add("name: a\npeers:\n  b: {secret: 0123456789}\ndedup_window: 5m\nmax_batch: 10\n")
	f.Add("dedup_window: 300\nlog_level: debug\nlog_format: json\nrequire_contracts: true\n")
	f.Add("listn: x\n")
	f.Add("dedup_window: 1e300\n")
	f.Add("max_event_bytes: -1\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc string) {
		path := filepath.Join(dir, "node.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := node.DefaultConfig()
		if err := node.LoadConfigFile(&cfg, path); err != nil {
			if !strings.Contains(err.Error(), "node.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		_ = cfg.Validate()
		j, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("encode %+v: %v", cfg, err)
		}
		if err := os.WriteFile(path, j, 0o600); err != nil {
			t.Fatal(err)
		}
		again := node.DefaultConfig()
		if err := node.LoadConfigFile(&again, path); err != nil {
			t.Fatalf("re-load %s: %v", j, err)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, again)
		}
	})
}
