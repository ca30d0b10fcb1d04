package node_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

// tlsNode starts a node whose client port has the mesh's server
// certificate, with t's other settings.
func tlsNode(t *testing.T, certs nodetest.Certs, tlsCfg node.TLS, services ...node.Service) *node.Node {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.HTTP, cfg.LeafListen = "", ""
	tlsCfg.Cert, tlsCfg.Key = certs.Server()
	cfg.TLS = &tlsCfg
	cfg.Services = services
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return startNode(t, cfg)
}

// tryDial connects to n and returns the error; a connection that works is
// closed at the end of the test.
func tryDial(t testing.TB, n *node.Node, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(n.ClientURL(), append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, opts...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// TestTLSRequiredRefusesPlain: with tls set, the client port speaks only
// TLS: a client that sends its CONNECT in the clear gets no PONG, and a
// client that does not trust the CA cannot connect.
func TestTLSRequiredRefusesPlain(t *testing.T) {
	certs := nodetest.NewCerts(t)
	n := tlsNode(t, certs, node.TLS{})
	if !strings.HasPrefix(n.ClientURL(), "tls://") {
		t.Fatalf("client URL %s, want tls://", n.ClientURL())
	}
	u, _ := url.Parse(n.ClientURL())
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("greeting %q (%v), want an INFO with tls_required", info, err)
	}
	if _, err := conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, "PONG") {
			t.Fatal("a plain connection got a PONG from a TLS port")
		}
		if err != nil {
			break // closed by the server: refused
		}
	}
	if _, err := tryDial(t, n); err == nil {
		t.Fatal("a client that does not trust the CA connected")
	}
	nc, err := tryDial(t, n, nats.RootCAs(certs.CA()))
	if err != nil {
		t.Fatalf("connect with the CA: %v", err)
	}
	if _, err := client.New(nc).Catalog(); err != nil {
		t.Fatalf("discovery over TLS: %v", err)
	}
}

// TestTLSMutualClient: with verify, a client without a certificate, or
// with one from another CA, is refused; one with a certificate of the
// mesh's CA is served.
func TestTLSMutualClient(t *testing.T) {
	certs := nodetest.NewCerts(t, "svc")
	other := nodetest.NewCerts(t, "svc")
	n := tlsNode(t, certs, node.TLS{CA: certs.CA(), Verify: true})
	if _, err := tryDial(t, n, nats.RootCAs(certs.CA())); err == nil {
		t.Fatal("a client without a certificate connected to a port that verifies")
	}
	if _, err := tryDial(t, n, nats.RootCAs(certs.CA()), nats.ClientCert(other.Client("svc"))); err == nil {
		t.Fatal("a client with a certificate of another CA connected")
	}
	nc, err := tryDial(t, n, nats.RootCAs(certs.CA()), nats.ClientCert(certs.Client("svc")))
	if err != nil {
		t.Fatalf("connect with a client certificate: %v", err)
	}
	if cat, err := client.New(nc).Catalog(); err != nil || cat.Node != "test" {
		t.Fatalf("discovery with a client certificate: %+v, %v", cat, err)
	}
}

// TestTLSMapServices: with map, a client certificate signs its service in
// (by its DNS name or by the subject the service names), with the
// service's grants; a certificate of no service is refused, and so is a
// password (the certificate decides); an nkey still signs in.
func TestTLSMapServices(t *testing.T) {
	certs := nodetest.NewCerts(t, "watcher", "auditor", "stranger")
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	n := tlsNode(t, certs, node.TLS{CA: certs.CA(), Map: true},
		node.Service{Name: "watcher"},
		node.Service{Name: "audit", Certificate: "CN=auditor", Read: []string{"order"}},
		node.Service{Name: "pw", Password: "pw-secret-1"},
		node.Service{Name: "keyed", Nkey: pub})
	ca := nats.RootCAs(certs.CA())
	as := func(name string) nats.Option { return nats.ClientCert(certs.Client(name)) }

	violations := make(chan error, 1)
	watcher, err := tryDial(t, n, ca, as("watcher"), nats.CustomInboxPrefix("_INBOX_watcher"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("watcher by its certificate: %v", err)
	}
	if cat, err := client.New(watcher).Catalog(); err != nil || cat.Node != "test" {
		t.Fatalf("watcher's discovery: %+v, %v", cat, err)
	}
	// Its grants are the service's: no read of the order aggregate.
	if err := watcher.Publish(protocol.SubjectRead+".order.1", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("watcher's read: got %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watcher read order without a read grant and no violation was reported")
	}
	audit, err := tryDial(t, n, ca, as("auditor"), nats.CustomInboxPrefix("_INBOX_audit"))
	if err != nil {
		t.Fatalf("audit by its certificate's subject: %v", err)
	}
	if _, err := client.New(audit).Read("order", "1", protocol.ReadRequest{}); err != nil {
		t.Fatalf("audit's read: %v", err)
	}
	if _, err := tryDial(t, n, ca, as("stranger")); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("a certificate of no service: got %v, want %v", err, nats.ErrAuthorization)
	}
	if _, err := tryDial(t, n, ca, as("stranger"), nats.UserInfo("pw", "pw-secret-1")); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("a password on a port that maps certificates: got %v, want %v", err, nats.ErrAuthorization)
	}
	keyed, err := tryDial(t, n, ca, as("stranger"), nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix("_INBOX_"+pub))
	if err != nil {
		t.Fatalf("an nkey on a port that maps certificates: %v", err)
	}
	if _, err := client.New(keyed).Catalog(); err != nil {
		t.Fatalf("keyed's discovery: %v", err)
	}
}

// TestTLSMeshLink: two nodes whose leaf ports verify each other's
// certificate (leaf_tls with verify, one CA); a link at a tls:// URL
// imports the owner's events.
func TestTLSMeshLink(t *testing.T) {
	certs := nodetest.NewCerts(t)
	cert, key := certs.Server()
	leafTLS := &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Verify: true}
	ocfg, bcfg := meshConfig(t, "orders", "billing"), meshConfig(t, "billing", "orders")
	ocfg.LeafTLS, bcfg.LeafTLS = leafTLS, leafTLS
	orders, billing := startNode(t, ocfg), startNode(t, bcfg)
	oc, bc := newClient(t, orders), newClient(t, billing)

	leaf, err := url.Parse(orders.LeafURL())
	if err != nil {
		t.Fatal(err)
	}
	leaf.Scheme = "tls"
	apply(t, oc, exportYAML("public-orders", "billing", "order", "OrderPlaced", "card_number"))
	apply(t, bc, linkYAML("orders-in", "orders", leaf.String(), "public-orders", ""))
	placeOrders(t, oc, 0, 5)
	checkExactlyOnce(t, waitCategory(t, bc, "order", 5), 5)

	checkLeafRequiresCert(t, leaf.Host, certs.CA())
}

// checkLeafRequiresCert checks that the leaf port at host asks for TLS
// with a client certificate, and refuses a peer that has none.
func checkLeafRequiresCert(t testing.TB, host, caFile string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	info, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) || !strings.Contains(info, `"tls_verify":true`) {
		t.Fatalf("leaf greeting %q (%v), want tls_required and tls_verify", info, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "127.0.0.1"})
	err = tc.Handshake()
	if err == nil { // TLS 1.3: the server's refusal arrives with the first read
		_, err = tc.Read(make([]byte, 1))
	}
	if err == nil || !(strings.Contains(err.Error(), "certificate required") || strings.Contains(err.Error(), "bad certificate")) {
		t.Fatalf("a peer without a certificate: got %v, want the leaf port to refuse it", err)
	}
}
