package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

func TestRejectedCommands(t *testing.T) {
	n := startNode(t)
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/")
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Published without a reply and refused: no total.
	if err := nc.Publish("dm.append.order.o-7", []byte(`{"specversion":"1.0","type":"OrderPlaced","id":"x-7","source":"s","data":{"customer":"c-7"}}`)); err != nil {
		t.Fatal(err)
	}
	var listed []protocol.RejectedEvent
	nodetest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		out := mustCLI(t, n, "rejected", "--aggregate", "order", "--json")
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			return err
		}
		if len(listed) != 1 {
			return fmt.Errorf("listed %d", len(listed))
		}
		return nil
	})
	if listed[0].ID != "x-7" || listed[0].Error.Code != protocol.CodeSchemaViolation {
		t.Fatalf("listed %+v", listed[0])
	}
	out := mustCLI(t, n, "rejected")
	if !strings.Contains(out, "SEQ") || !strings.Contains(out, "order/o-7") || !strings.Contains(out, "OrderPlaced") ||
		!strings.Contains(out, "x-7") || !strings.Contains(out, "schema_violation") {
		t.Fatalf("rejected printed\n%s", out)
	}
	if out := mustCLI(t, n, "status"); !strings.Contains(out, "REJECTED: 1 published events refused") {
		t.Fatalf("status printed\n%s", out)
	}
	if out := mustCLI(t, n, "rejected", "replay"); !strings.Contains(out, "replayed 0, failed 1") || !strings.Contains(out, "schema_violation") {
		t.Fatalf("replay before the fix printed\n%s", out)
	}
	if _, err := cli(t, n, "", "rejected", "replay", "x"); err == nil || !strings.Contains(err.Error(), "want a number") {
		t.Fatalf("replay x: %v", err)
	}
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/changes/orderplaced-v2.yaml")
	// v2 still needs total; v3 drops it: the fix.
	fix := strings.NewReplacer("version: 2", "version: 3", "required: [customer, total]", "required: [customer]")
	if _, err := cli(t, n, fix.Replace(orderPlacedV2(t)), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply the fix: %v", err)
	}
	seq := fmt.Sprint(listed[0].Seq)
	if out := mustCLI(t, n, "rejected", "replay", seq); out != "replayed 1, failed 0\n" {
		t.Fatalf("replay printed %q", out)
	}
	if out := mustCLI(t, n, "read", "order", "o-7"); !strings.Contains(out, `{"customer":"c-7"}`) {
		t.Fatalf("read printed\n%s", out)
	}
	if out := mustCLI(t, n, "rejected", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("rejected after the replay printed %s", out)
	}
}

func orderPlacedV2(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/examples/orders/changes/orderplaced-v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
