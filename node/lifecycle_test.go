package node_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func TestRestartKeepsEventsAndContracts(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := startNode(t, cfg)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	r, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{"customer":"c-1","total":3}`), client.AppendOptions{ID: "p-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	n2 := startNode(t, cfg)
	c2 := newClient(t, n2)
	evs := readAll(t, c2, "order", "o-1")
	if len(evs) != 1 || evs[0].Seq != r.Seq || evs[0].ID != "p-1" {
		t.Fatalf("got %+v after restart, want the stored event", evs)
	}
	// Contracts survived: a bad event is still refused.
	_, err = c2.Append("order", "o-1", "OrderPlaced", []byte(`{}`), client.AppendOptions{})
	wantAPIError(t, err, protocol.CodeSchemaViolation)
	// The version carries on from the log.
	if _, err := c2.Append("order", "o-1", "OrderShipped", []byte(`{}`), client.AppendOptions{ExpectedVersion: client.Expect(r.Seq)}); err != nil {
		t.Fatal(err)
	}
	cat, err := c2.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.EventTypes) != 4 {
		t.Fatalf("got %d contracts after restart, want 4", len(cat.EventTypes))
	}
}

func TestStartFailsCleanly(t *testing.T) {
	t.Run("port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cfg := testConfig(t.TempDir())
		cfg.Listen = l.Addr().String()
		n, err := node.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = n.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("got %v, want an address in use error", err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("close after failed start: %v", err)
		}
	})
	t.Run("data dir not writable", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(filepath.Join(file, "data"))
		n, err := node.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = n.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), "data dir") {
			t.Fatalf("got %v, want a data dir error", err)
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		cfg := testConfig(t.TempDir())
		cfg.Name = "bad name"
		cfg.MaxBatch = 5000
		_, err := node.New(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), "name") || !strings.Contains(err.Error(), "max_batch") {
			t.Fatalf("got %v, want errors naming name and max_batch", err)
		}
	})
}

func TestServicesCannotBypassTheAPI(t *testing.T) {
	n := newNode(t)
	errs := make(chan error, 10)
	nc := dial(t, n, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default: // the first ten are enough; never block the client
		}
	}))
	c := client.New(nc)
	if _, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{}`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	// A direct publish into the log is refused by the server.
	if err := nc.Publish("evt.order.o-1.OrderPlaced", []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("got %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no permissions violation reported for a direct publish")
	}
	// So is serving the node's API subjects.
	if _, err := nc.Subscribe("dm.append.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("got %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no permissions violation reported for subscribing to dm.append.>")
	}
	if evs := readAll(t, c, "order", "o-1"); len(evs) != 1 {
		t.Fatalf("got %d events, want 1: the forged one must not be stored", len(evs))
	}
}

func TestAPIIsAMicroService(t *testing.T) {
	n := newNode(t)
	nc := dial(t, n)
	resp := request(t, nc, "$SRV.INFO.datamesh", nil, "")
	var info micro.Info
	if err := json.Unmarshal(resp.Data, &info); err != nil {
		t.Fatal(err)
	}
	subjects := map[string]bool{}
	for _, e := range info.Endpoints {
		subjects[e.Subject] = true
	}
	for _, want := range []string{"dm.append.>", "dm.read.>", "dm.admin.apply", "dm.discovery"} {
		if !subjects[want] {
			t.Fatalf("got endpoints %v, want %s", subjects, want)
		}
	}
	if info.Name != "datamesh" || info.Version != node.Version {
		t.Fatalf("got %s %s", info.Name, info.Version)
	}
}

func TestHealthz(t *testing.T) {
	n := newNode(t)
	resp, err := http.Get(n.MonitorURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got /healthz %d, want 200", resp.StatusCode)
	}
}

func TestAppendWhenTheLogIsDownIsUnavailable(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	if _, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{}`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Server().DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{}`), client.AppendOptions{})
	e := wantAPIError(t, err, protocol.CodeUnavailable)
	if e.Status != 503 {
		t.Fatalf("got status %d, want 503", e.Status)
	}
	_, err = c.Read("order", "o-1", protocol.ReadRequest{})
	wantAPIError(t, err, protocol.CodeUnavailable)
}
