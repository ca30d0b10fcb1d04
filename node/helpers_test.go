package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

// testConfig is a node on random loopback ports with its data in dir.
func testConfig(dir string) node.Config {
	cfg := node.DefaultConfig()
	cfg.Name = "test"
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:-1"
	cfg.HTTP = "127.0.0.1:-1"
	cfg.LeafListen = "127.0.0.1:-1"
	return cfg
}

func testLogger(t testing.TB) hclog.Logger {
	level := hclog.Warn
	if os.Getenv("DATAMESH_TEST_LOG") != "" {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: level, Output: os.Stderr})
}

// startNode starts a node, closed at the end of the test.
func startNode(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// newNode starts a fresh node in a temp dir.
func newNode(t testing.TB) *node.Node {
	t.Helper()
	return startNode(t, testConfig(t.TempDir()))
}

// dial connects to n over TCP, as a service would.
func dial(t testing.TB, n *node.Node, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newClient(t testing.TB, n *node.Node) *client.Client {
	t.Helper()
	return client.New(dial(t, n))
}

// request sends a raw NATS request and returns the reply.
func request(t testing.TB, nc *nats.Conn, subject string, h nats.Header, body string) *nats.Msg {
	t.Helper()
	m := nats.NewMsg(subject)
	for k, v := range h {
		m.Header[k] = v
	}
	m.Data = []byte(body)
	resp, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return resp
}

// wantAPIError asserts that err is a node error with code, and returns it.
func wantAPIError(t testing.TB, err error, code string) *protocol.Error {
	t.Helper()
	var e *protocol.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want API error %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("got error code %s (%s), want %s", e.Code, e.Message, code)
	}
	return e
}

// wantErrorReply asserts a raw reply carries the micro error headers and an
// error body with code.
func wantErrorReply(t testing.TB, resp *nats.Msg, status, code string) *protocol.Error {
	t.Helper()
	if got := resp.Header.Get(micro.ErrorCodeHeader); got != status {
		t.Fatalf("got %s %q, want %s (body %s)", micro.ErrorCodeHeader, got, status, resp.Data)
	}
	if resp.Header.Get(micro.ErrorHeader) == "" {
		t.Fatalf("no %s header", micro.ErrorHeader)
	}
	var er protocol.ErrorReply
	if err := json.Unmarshal(resp.Data, &er); err != nil || er.Error == nil {
		t.Fatalf("error body %q: %v", resp.Data, err)
	}
	if er.Error.Code != code {
		t.Fatalf("got code %s (%s), want %s", er.Error.Code, er.Error.Message, code)
	}
	if er.Error.Message == "" {
		t.Fatalf("error %s has no message", code)
	}
	return er.Error
}

func readAll(t testing.TB, c *client.Client, aggregate, id string) []protocol.Event {
	t.Helper()
	evs, err := c.ReadAll(aggregate, id)
	if err != nil {
		t.Fatalf("read %s/%s: %v", aggregate, id, err)
	}
	return evs
}

// receive returns the next message of ch, failing the test after 30 s.
func receive(t testing.TB, ch <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30 s")
		return nil
	}
}

// checkFor polls fn until it returns nil or the deadline passes.
var checkFor = nodetest.CheckFor
