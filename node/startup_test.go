package node_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/datamesh/datamesh/node"
)

// TestStartPortInUse: a port in use is one error that names the address and
// the setting, and nothing is logged, least of all that a server is ready.
func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	for _, tc := range []struct{ setting, flag string }{{"listen", "--listen"}, {"http", "--http"}, {"leaf_listen", "--leaf-listen"}} {
		t.Run(tc.setting, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			switch tc.setting {
			case "listen":
				cfg.Listen = addr
			case "http":
				cfg.HTTP = addr
			case "leaf_listen":
				cfg.LeafListen = addr
			}
			var logs bytes.Buffer
			n, err := node.New(cfg, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = n.Start(ctx)
			if err == nil {
				n.Close()
				t.Fatal("node started on a port in use")
			}
			want := tc.setting + " " + addr + ": address already in use (is another node running? " + tc.flag + " sets the port)"
			if err.Error() != want {
				t.Fatalf("got %q, want %q", err, want)
			}
			if logs.Len() > 0 {
				t.Fatalf("logged %q, want nothing", logs.String())
			}
		})
	}
}

// TestStartLogsAfterReady: nats-server's start-up lines, held until it is
// ready, are still logged on a start that succeeds, before "node ready".
func TestStartLogsAfterReady(t *testing.T) {
	var logs bytes.Buffer
	cfg := testConfig(t.TempDir())
	n, err := node.New(cfg, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Close()
	out := logs.String()
	ready, nodeReady := strings.Index(out, "Server is ready"), strings.Index(out, "node ready")
	if ready < 0 || nodeReady < ready {
		t.Fatalf("want nats-server's lines, then node ready; got\n%s", out)
	}
}
