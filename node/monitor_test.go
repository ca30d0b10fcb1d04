package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
)

// getJSON fetches path from n's HTTP port and decodes its JSON body.
func getJSON(t testing.TB, n *node.Node, path string, v any) int {
	t.Helper()
	resp, err := http.Get(n.MonitorURL() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// The HTTP port serves nats-server's pages, read in process, beside ours.
func TestMonitorServesNATSPages(t *testing.T) {
	n := newNode(t)
	var varz struct {
		ServerName string `json:"server_name"`
	}
	if code := getJSON(t, n, "/varz", &varz); code != http.StatusOK || varz.ServerName != "test" {
		t.Fatalf("/varz: got %d %+v, want 200 and server_name test", code, varz)
	}
	var jsz struct {
		Streams int `json:"streams"`
	}
	if code := getJSON(t, n, "/jsz", &jsz); code != http.StatusOK || jsz.Streams < 1 {
		t.Fatalf("/jsz: got %d %+v, want 200 and the log's stream", code, jsz)
	}
}

type readiness struct {
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready"`
}

// /readyz is 200 while every active projection is live, and 503 naming the
// projection once it fails.
func TestReadyz(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrders(t, c)
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var r readiness
		if code := getJSON(t, n, "/readyz", &r); code != http.StatusOK || !r.Ready {
			return fmt.Errorf("/readyz: got %d %+v, want 200 ready", code, r)
		}
		return nil
	})
	failing := []byte(`kind: Projection
name: strict
version: 1
source: {aggregates: [order], types: [OrderPlaced]}
key: event.id
handlers:
  OrderPlaced: "merge(doc, {big: data.customer.name})"
on_error: stop
`)
	if _, err := c.Apply(failing, false); err != nil {
		t.Fatal(err)
	}
	placeOrder(t, c, "o-1", "alice", 5) // data.customer.name fails: customer is a string
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var r readiness
		code := getJSON(t, n, "/readyz", &r)
		if code != http.StatusServiceUnavailable || r.Ready || len(r.NotReady) != 1 || !strings.HasPrefix(r.NotReady[0], "projection strict v1: failed") {
			return fmt.Errorf("/readyz: got %d %+v, want 503 naming projection strict", code, r)
		}
		return nil
	})
}
