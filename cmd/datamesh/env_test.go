package main

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node"
)

// TestNodeSettingsFlagsAndEnv: every config key but peers has a flag and
// an environment variable, and the flag beats the variable.
func TestNodeSettingsFlagsAndEnv(t *testing.T) {
	t.Setenv("DATAMESH_MAX_BATCH", "5")
	t.Setenv("DATAMESH_DEDUP_WINDOW", "90s")
	var f nodeFlags
	cmd := &cobra.Command{}
	f.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--max-event-bytes", "1024"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Config(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBatch != 5 || time.Duration(cfg.DedupWindow) != 90*time.Second || cfg.MaxEventBytes != 1024 {
		t.Fatalf("got max_batch %d, dedup_window %v, max_event_bytes %d; want 5, 1m30s, 1024",
			cfg.MaxBatch, time.Duration(cfg.DedupWindow), cfg.MaxEventBytes)
	}
	if err := cmd.Flags().Parse([]string{"--max-batch", "7", "--dedup-window", "2m"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err = f.Config(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBatch != 7 || time.Duration(cfg.DedupWindow) != 2*time.Minute {
		t.Fatalf("got max_batch %d, dedup_window %v; want the flags' 7, 2m", cfg.MaxBatch, time.Duration(cfg.DedupWindow))
	}

	// Every key of the config file has a flag, but the file-only ones: lists
	// and blocks that hold secrets, and the cluster block (whose fields
	// have flags: --cluster-listen, --routes).
	fileOnly := []string{"peers", "services", "tls", "leaf_tls", "http_tls", "mesh_seed", "cluster"}
	for _, key := range configKeys(t) {
		flag := strings.ReplaceAll(key, "_", "-")
		if slices.Contains(fileOnly, key) {
			continue
		}
		if cmd.Flags().Lookup(flag) == nil {
			t.Errorf("config key %s has no flag --%s", key, flag)
		}
	}
}

// configKeys are the keys a config file can hold.
func configKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	for f := range reflect.TypeFor[node.Config]().Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "-" {
			keys = append(keys, name)
		}
	}
	if len(keys) < 10 {
		t.Fatalf("found config keys %q", keys)
	}
	return keys
}

func TestUnknownEnvWarned(t *testing.T) {
	root := newRootCmd(nil, &bytes.Buffer{}, &bytes.Buffer{})
	got := unknownEnv(root, []string{
		"DATAMESH_MAX_BATCHES=5", "DATAMESH_URL=nats://x", "DATAMESH_MAX_BATCH=5", "DATAMESH_DEDUP_WINDOW=1m",
		"DATAMESH_TEST_LOG=1", "DATAMESH_ZZZ=1", "HOME=/root",
	})
	want := []string{
		"environment variable DATAMESH_MAX_BATCHES matches no setting and is ignored (did you mean DATAMESH_MAX_BATCH?)",
		"environment variable DATAMESH_ZZZ matches no setting and is ignored",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	// datamesh node logs it once, as it starts.
	t.Setenv("DATAMESH_MAX_BATCHES", "5")
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"node", "--name", "envtest", "--data", t.TempDir(), "--listen", port, "--http", "", "--leaf-listen", ""},
			nil, &bytes.Buffer{}, &logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(strings.Join(logs.lines(), "\n"), "node ready") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(logs.lines(), "\n"), "DATAMESH_MAX_BATCHES matches no setting"); n != 1 {
		t.Fatalf("warned %d times, want once:\n%s", n, strings.Join(logs.lines(), "\n"))
	}
}
