package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node/nodetest"
)

// With --log-format json every line is one JSON object, and a worker's
// lines carry the projection they concern.
func TestNodeLogsJSON(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"node", "--name", "jsonlogs", "--data", t.TempDir(), "--listen", port, "--http", "",
			"--leaf-listen", "", "--log-format", "json"}, nil, &bytes.Buffer{}, logs)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("node did not stop")
		}
	}()
	url := "nats://" + port
	nodetest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		return run(context.Background(), []string{"catalog", "--server", url}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	})
	if err := run(context.Background(), []string{"apply", "-f", "../../deploy/examples/orders/", "--server", url}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	nodetest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		for _, line := range logs.lines() {
			var l map[string]any
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				return fmt.Errorf("a log line is not JSON: %q", line)
			}
			if l["@message"] == "projection live" && l["name"] == "orders" && strings.HasSuffix(fmt.Sprint(l["@module"]), "projection") {
				return nil
			}
		}
		return fmt.Errorf("no JSON line says projection orders is live:\n%s", strings.Join(logs.lines(), "\n"))
	})
}
