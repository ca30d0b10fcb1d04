package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func TestServiceSignIn(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("hashed-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	n := securedNode(t, []node.Service{
		{Name: "admin", Password: "admin-secret", Admin: true},
		{Name: "hashed", Password: string(hash), Read: []string{"order"}},
		{Name: "plain", Password: "plain-secret", Read: []string{"order"}},
		{Name: "keyed", Nkey: pub, Read: []string{"order"}},
	})
	read := func(opts ...nats.Option) error {
		nc, err := nats.Connect(n.ClientURL(), opts...)
		if err != nil {
			return err
		}
		defer nc.Close()
		_, err = client.New(nc).Read("order", "1", protocol.ReadRequest{})
		return err
	}
	for name, opts := range map[string][]nats.Option{
		"bcrypt": {nats.UserInfo("hashed", "hashed-secret"), nats.CustomInboxPrefix("_INBOX_hashed")},
		"plain":  {nats.UserInfo("plain", "plain-secret"), nats.CustomInboxPrefix("_INBOX_plain")},
		"nkey":   {nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix("_INBOX_" + pub)},
	} {
		if err := read(opts...); err != nil {
			t.Errorf("%s sign-in and read: %v", name, err)
		}
	}
	for name, opts := range map[string][]nats.Option{
		"anonymous":      nil,
		"wrong password": {nats.UserInfo("hashed", "nope")},
		"unknown user":   {nats.UserInfo("stranger", "stranger-secret")},
	} {
		if err := read(opts...); !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: got %v, want an authorization violation", name, err)
		}
	}
}

func TestNonLoopbackListenerNeedsServices(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Listen = "0.0.0.0:-1"
	n, err := node.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(context.Background())
	n.Close()
	if err == nil || !strings.Contains(err.Error(), "listen 0.0.0.0:-1 is not a loopback address") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("start off loopback without services: %v, want a one-line refusal", err)
	}
	// --insecure starts it (it listens on every interface; the test sends
	// nothing there).
	cfg.Insecure = true
	startNode(t, cfg).Close()
	// So do services.
	cfg.Insecure = false
	cfg.Services = []node.Service{{Name: "admin", Password: "admin-secret", Admin: true}}
	startNode(t, cfg).Close()
}

// TestReloadChangesGrantsOfLiveConnections reloads through the API (as
// `datamesh reload` does) and checks that live connections get the new
// grants, a removed service is cut off, and a bad config changes nothing.
func TestReloadChangesGrantsOfLiveConnections(t *testing.T) {
	services := []node.Service{
		{Name: "admin", Password: "admin-secret", Admin: true},
		{Name: "writer", Password: "writer-secret", Append: []string{"order"}},
		{Name: "gone", Password: "gone-secret", Read: []string{"order"}},
	}
	cfg := testConfig(t.TempDir())
	cfg.Services = services
	next := cfg
	n, err := node.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	n.SetConfigSource(func() (node.Config, error) { return next, nil })
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	admin := client.New(serviceConn(t, n, "admin", nil))
	applyOrderContracts(t, admin)
	writerErrs := make(chan error, 8)
	writerNC := serviceConn(t, n, "writer", writerErrs)
	writer := client.New(writerNC)
	gone := serviceConn(t, n, "gone", nil)
	placeOrder(t, writer, "1", "ada", 1)

	// Refused: a prefix pattern, and a setting only a restart changes.
	next.Services = append([]node.Service{}, services...)
	next.Services[1].Append = []string{"order-*"}
	wantReloadRefused(t, admin, "prefix pattern cannot be enforced")
	next = cfg
	next.Durability = node.DurabilityOS
	wantReloadRefused(t, admin, "durability changed: restart the node")
	placeOrder(t, writer, "2", "ada", 1)

	next = cfg
	next.Services = []node.Service{services[0],
		{Name: "writer", Password: "writer-secret", Append: []string{"payment"}},
		{Name: "late", Password: "late-secret", Read: []string{"order"}}}
	if err := admin.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	// The live connection lost order and gained payment.
	p := &probe{t: t, nc: writerNC, errs: writerErrs}
	if got := p.request("dm.append.order.3", appendHeaders(), orderData); got != denied {
		t.Fatalf("append order after its grant was removed: %s", got)
	}
	if got := p.request("dm.append.payment.3", appendHeaders(), `{}`); got != ok {
		t.Fatalf("append payment after its grant was added: %s", got)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !gone.IsClosed() && gone.Status() == nats.CONNECTED {
			return errors.New("the removed service's connection is still up")
		}
		return nil
	})
	late := client.New(serviceConn(t, n, "late", nil))
	if _, err := late.Read("order", "1", protocol.ReadRequest{}); err != nil {
		t.Fatalf("a service added by reload: %v", err)
	}
}

func wantReloadRefused(t *testing.T, admin *client.Client, msg string) {
	t.Helper()
	err := admin.Reload()
	e := wantAPIError(t, err, "bad_request")
	if !strings.Contains(e.Message, msg) || !strings.Contains(e.Message, "the old one stays") {
		t.Fatalf("refused reload says %q, want %q", e.Message, msg)
	}
}

// TestReloadSecuresARunningNode adds services to a node that ran without:
// anonymous connections are closed and refused from then on.
func TestReloadSecuresARunningNode(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := startNode(t, cfg)
	anon := dial(t, n)
	cfg.Services = []node.Service{{Name: "admin", Password: "admin-secret", Admin: true}}
	if err := n.Reload(cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if anon.Status() == nats.CONNECTED {
			return errors.New("the anonymous connection is still up")
		}
		return nil
	})
	if _, err := nats.Connect(n.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous after reload: %v", err)
	}
	if _, err := client.New(serviceConn(t, n, "admin", nil)).Projections(); err != nil {
		t.Fatalf("admin after reload: %v", err)
	}
}

// TestPeerAddedWithoutRestart links billing to orders, which learns of
// billing only by a reload.
func TestPeerAddedWithoutRestart(t *testing.T) {
	ocfg := meshConfig(t, "orders")
	orders := startNode(t, ocfg)
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)
	if _, err := oc.Apply([]byte(exportYAML("to-billing", "billing", "order", "OrderPlaced", "")), false); err == nil {
		t.Fatal("an export to an unknown peer was accepted")
	}
	ocfg.Peers = map[string]node.Peer{"billing": {Secret: testSecret}}
	if err := orders.Reload(ocfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	apply(t, oc, exportYAML("to-billing", "billing", "order", "OrderPlaced", ""))
	apply(t, bc, linkYAML("from-orders", "orders", orders.LeafURL(), "to-billing", ""))
	placeOrders(t, oc, 0, 5)
	checkExactlyOnce(t, waitCategory(t, bc, "order", 5), 5)
}

// TestPeerSignsInWithNkey links two nodes that know each other by public
// nkey, each signing in with its mesh_seed file.
func TestPeerSignsInWithNkey(t *testing.T) {
	seed := func(name string) (file, pub string) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := kp.Seed()
		pub, _ = kp.PublicKey()
		file = filepath.Join(t.TempDir(), name+".nk")
		if err := os.WriteFile(file, s, 0o600); err != nil {
			t.Fatal(err)
		}
		return file, pub
	}
	oseed, opub := seed("orders")
	bseed, bpub := seed("billing")
	ocfg, bcfg := meshConfig(t, "orders"), meshConfig(t, "billing")
	ocfg.MeshSeed, ocfg.Peers = oseed, map[string]node.Peer{"billing": {Nkey: bpub}}
	bcfg.MeshSeed, bcfg.Peers = bseed, map[string]node.Peer{"orders": {Nkey: opub}}
	orders, billing := startNode(t, ocfg), startNode(t, bcfg)
	oc, bc := newClient(t, orders), newClient(t, billing)
	apply(t, oc, exportYAML("to-billing", "billing", "order", "OrderPlaced", ""))
	apply(t, bc, linkYAML("from-orders", "orders", orders.LeafURL(), "to-billing", ""))
	placeOrders(t, oc, 0, 5)
	checkExactlyOnce(t, waitCategory(t, bc, "order", 5), 5)

	// A seed file others can read is refused.
	if err := os.Chmod(oseed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ocfg.Validate(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("mesh_seed %s: mode 0644", oseed)) {
		t.Fatalf("a world-readable seed: %v", err)
	}
}

// lockedBuffer is a log sink shared by the nodes' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsNeverShown links two nodes with a shared secret and services
// with passwords, at debug level, through a refused reload and a failed
// sign-in, and looks for the secrets in the logs, the status, the catalog
// and the errors.
func TestSecretsNeverShown(t *testing.T) {
	logs := &lockedBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: logs})
	start := func(cfg node.Config) *node.Node {
		n, err := node.New(cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	services := []node.Service{{Name: "admin", Password: "admin-secret", Admin: true}}
	ocfg, bcfg := meshConfig(t, "orders", "billing"), meshConfig(t, "billing", "orders")
	ocfg.Services, bcfg.Services = services, services
	orders, billing := start(ocfg), start(bcfg)
	oc := client.New(serviceConn(t, orders, "admin", nil))
	bc := client.New(serviceConn(t, billing, "admin", nil))
	apply(t, oc, exportYAML("to-billing", "billing", "order", "OrderPlaced", ""))
	apply(t, bc, linkYAML("from-orders", "orders", orders.LeafURL(), "to-billing", ""))
	placeOrders(t, oc, 0, 3)
	waitCategory(t, bc, "order", 3)

	var shown []string
	bad := ocfg
	bad.Peers = map[string]node.Peer{"billing": {Secret: "short"}}
	if err := orders.Reload(bad); err != nil {
		shown = append(shown, err.Error())
	}
	if _, err := nats.Connect(orders.ClientURL(), nats.UserInfo("admin", "wrong-"+testSecret)); err != nil {
		shown = append(shown, err.Error())
	}
	for _, c := range []*client.Client{oc, bc} {
		for _, get := range []func() (any, error){
			func() (any, error) { return c.Catalog() },
			func() (any, error) { return c.CatalogMesh() },
			func() (any, error) { return c.Mesh() },
			func() (any, error) { return c.Projections() },
		} {
			v, err := get()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(v)
			shown = append(shown, string(b))
		}
	}
	shown = append(shown, logs.String())
	for _, secret := range []string{testSecret, "admin-secret"} {
		for _, s := range shown {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q shown in:\n%s", secret, s)
			}
		}
	}
}
