package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/console"
)

// Two services of the secured test node: an admin, and a viewer that may
// only query the orders projection and read order events.
var testServices = []node.Service{
	{Name: "ops", Password: "ops-secret", Admin: true},
	{Name: "viewer", Password: "viewer-secret", Query: []string{"orders"}, Read: []string{"order"}},
}

const testSecret = "console-mesh-secret"

// nodeConfig is a node named name on random loopback ports in a temp dir,
// sharing events with peers.
func nodeConfig(t testing.TB, name string, peers ...string) node.Config {
	cfg := node.DefaultConfig()
	cfg.Name = name
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:-1"
	cfg.HTTP = ""
	cfg.LeafListen = "127.0.0.1:-1"
	if len(peers) > 0 {
		cfg.Peers = map[string]node.Peer{}
		for _, p := range peers {
			cfg.Peers[p] = node.Peer{Secret: testSecret}
		}
	}
	return cfg
}

func startNode(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	level := hclog.Error
	if os.Getenv("DATAMESH_TEST_LOG") != "" {
		level = hclog.Debug
	}
	n, err := node.New(cfg, hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: level, Output: os.Stderr}))
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

// serviceClient signs in to n over TCP as a service of testServices
// (anonymously when name is "").
func serviceClient(t testing.TB, n *node.Node, name string) *client.Client {
	t.Helper()
	var opts []nats.Option
	if name != "" {
		opts = append(opts, nats.UserInfo(name, name+"-secret"), nats.CustomInboxPrefix("_INBOX_"+name))
	}
	nc, err := nats.Connect(n.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %q: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return client.New(nc)
}

// applyFile applies one file of deploy/examples/orders.
func applyFile(t testing.TB, c *client.Client, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "examples", "orders", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(b, false); err != nil {
		t.Fatalf("apply %s: %v", name, err)
	}
}

func appendEvent(t testing.TB, c *client.Client, agg, id, typ, data string) uint64 {
	t.Helper()
	r, err := c.Append(agg, id, typ, []byte(data), client.AppendOptions{})
	if err != nil {
		t.Fatalf("append %s/%s %s: %v", agg, id, typ, err)
	}
	return r.Seq
}

// serveConsole serves a console for n on its own HTTP server.
func serveConsole(t testing.TB, n *node.Node, timeout time.Duration) *httptest.Server {
	t.Helper()
	c := console.New(console.Config{Node: n.Name(), Version: node.Version, Connect: n.ConnectAs, Timeout: timeout}, nil)
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, c.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		c.Close()
	})
	return srv
}

// browser is an HTTP client with a cookie jar: one browser session.
type browser struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func newBrowser(t testing.TB, srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: srv.URL, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// do sends a request to the console's API and decodes the JSON answer
// into out (when not nil); it returns the status.
func (b *browser) do(method, path, body string, out any) int {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("X-Datamesh-Console", "1")
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			b.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// apiErr is the error body of the console's API.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Subject string `json:"subject"`
	} `json:"error"`
}
