package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/datamesh/datamesh/node"
)

// TestDocsTLS runs what the TLS section of docs/security.md shows: `keys
// tls` prints what the page shows, the page's node config (with its ports
// on 127.0.0.1:-1 and a real password hash) loads, validates and starts,
// and the page's client command reaches it over TLS.
func TestDocsTLS(t *testing.T) {
	lines, _ := markdownSection(t, "../../docs/security.md", "TLS")
	doc := strings.Join(lines, "\n")
	t.Chdir(t.TempDir()) // the page's paths are relative: tls/ca.pem
	args, want := docCommand(t, doc, "datamesh keys tls --dir tls ")
	if got := mustCLI(t, nil, args...); got != want {
		t.Fatalf("datamesh %s printed\n%s\nthe page shows\n%s", strings.Join(args, " "), got, want)
	}

	yaml := regexp.MustCompile("(?s)```yaml\n(name: orders\n.*?)```").FindStringSubmatch(doc)
	if yaml == nil {
		t.Fatal("docs/security.md#tls has no node config (a yaml block starting with name: orders)")
	}
	// The lowest cost: the node checks the hash at every sign-in, and cost
	// 11 under the race detector outlasts the client's connect handshake.
	hash, err := bcrypt.GenerateFromPassword([]byte("orders-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	conf := regexp.MustCompile(`0\.0\.0\.0:\d+`).ReplaceAllString(yaml[1], "127.0.0.1:-1")
	conf = strings.Replace(conf, "$2a$11$...", string(hash), 1)
	if err := os.WriteFile("node.yaml", []byte(conf+"data: data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	if err := node.LoadConfigFile(&cfg, "node.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	t.Setenv("DATAMESH_PASSWORD", "orders-pw")
	args, _ = docCommand(t, doc, "datamesh catalog --server tls://orders.example.com:4222 --tls-ca tls/ca.pem --user")
	for i, a := range args {
		if strings.HasPrefix(a, "tls://orders.example.com") {
			args[i] = n.ClientURL()
		}
	}
	if got := mustCLI(t, nil, args...); !strings.HasPrefix(got, "node orders ") {
		t.Fatalf("datamesh %s printed %q", strings.Join(args, " "), got)
	}
}

// docCommand finds the "$ " line of doc that starts with prefix, and
// returns its arguments (after "datamesh", without a trailing comment)
// and the lines shown under it.
func docCommand(t testing.TB, doc, prefix string) ([]string, string) {
	t.Helper()
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "$ "+prefix) {
			continue
		}
		cmd, _, _ := strings.Cut(strings.TrimPrefix(l, "$ datamesh "), " #")
		var want strings.Builder
		for _, o := range lines[i+1:] {
			if strings.HasPrefix(o, "$ ") || strings.HasPrefix(o, "```") {
				break
			}
			want.WriteString(o + "\n")
		}
		return strings.Fields(cmd), want.String()
	}
	t.Fatalf("docs/security.md#tls has no command starting with %q", prefix)
	return nil, ""
}
