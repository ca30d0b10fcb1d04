package node_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/tlsgen"
)

// routeCerts makes a route certificate for each of n servers, all signed
// by one CA, the way docs/cluster.md does it: `datamesh keys tls` in a
// directory per server that holds the CA's files. Each server's block
// has its own certificate and key and the CA.
func routeCerts(t testing.TB, n int) []*node.TLS {
	t.Helper()
	caDir := t.TempDir()
	if _, err := tlsgen.Write(caDir, tlsgen.Options{Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		t.Fatal(err)
	}
	out := make([]*node.TLS, n)
	for i := range n {
		dir := t.TempDir()
		for _, f := range []string{tlsgen.CAFile, tlsgen.CAKeyFile} {
			b, err := os.ReadFile(filepath.Join(caDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tlsgen.Write(dir, tlsgen.Options{Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
			t.Fatal(err)
		}
		out[i] = &node.TLS{Cert: filepath.Join(dir, tlsgen.ServerFile), Key: filepath.Join(dir, tlsgen.ServerKeyFile),
			CA: filepath.Join(dir, tlsgen.CAFile)}
	}
	return out
}

// tlsClusterConfigs are clusterConfigs whose routes are mutual TLS.
func tlsClusterConfigs(t testing.TB, n int) []node.Config {
	cfgs := clusterConfigs(t, n)
	for i, c := range routeCerts(t, n) {
		cfgs[i].Cluster.TLS = c
	}
	return cfgs
}

// TestClusterRouteTLS: three servers whose routes are mutual TLS form a
// cluster and replicate: an append through one is in another's
// projection (min_seq), and each route is TLS.
func TestClusterRouteTLS(t *testing.T) {
	cfgs := tlsClusterConfigs(t, 3)
	servers := startServers(t, cfgs)
	c0, c2 := newClient(t, servers[0]), newClient(t, servers[2])
	applyOrders(t, c0)
	var last uint64
	for i := range 5 {
		last = placeOrder(t, c0, fmt.Sprintf("o-%d", i), "ada", 1)
	}
	waitCount(t, c2, last, 5)
	for i, s := range servers {
		rz, err := s.Server().Routez(nil)
		if err != nil {
			t.Fatal(err)
		}
		peers := map[string]bool{}
		for _, r := range rz.Routes {
			peers[r.RemoteName] = true
		}
		if len(peers) != 2 {
			t.Fatalf("server s%d has routes to %v, want the two others", i, peers)
		}
	}
	// The route port speaks TLS only, and presents the server's own
	// route certificate.
	for i, cfg := range cfgs {
		rt := cfg.Cluster.TLS
		if got, want := routeCertSerial(t, cfg.Cluster.Listen, rt), certSerial(t, rt.Cert); got != want {
			t.Fatalf("server s%d's route port presents certificate %s, want its own %s", i, got, want)
		}
	}
}

// TestClusterRouteTLSRefusesAnotherCA: a server whose route certificate
// another CA signed tries to join a cluster of three: they refuse its
// handshakes, it never joins the meta group, and its start waits for a
// quorum it never gets. The three go on.
func TestClusterRouteTLSRefusesAnotherCA(t *testing.T) {
	cfgs := tlsClusterConfigs(t, 3)
	logs := &lockedBuffer{}
	good := startServersLogging(t, cfgs, logs)

	rogue := clusterConfigs(t, 1)[0]
	rogue.ServerName = "rogue"
	rogue.Cluster.Routes = cfgs[0].Cluster.Routes
	certs := nodetest.NewCerts(t)
	cert, key := certs.Server()
	// It trusts the cluster's CA: only the others' check of its
	// certificate keeps it out.
	rogue.Cluster.TLS = &node.TLS{Cert: cert, Key: key, CA: cfgs[0].Cluster.TLS.CA}
	r, err := node.New(rogue, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rogueStarted := make(chan error, 1)
	go func() { rogueStarted <- r.Start(ctx) }()

	// Wait until the three have refused the rogue's certificate a few
	// times (it dials each again every second), checking all along that
	// it is in no route and not in the meta group.
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for i, s := range good {
			if err := notJoined(s, rogue.ServerName); err != nil {
				t.Fatalf("server s%d: %v", i, err)
			}
		}
		if n := strings.Count(logs.String(), "TLS route handshake error"); n < 6 {
			return fmt.Errorf("%d route handshakes refused, want 6; the servers' log:\n%s", n, logs.String())
		}
		return nil
	})
	if !strings.Contains(logs.String(), "certificate signed by unknown authority") {
		t.Fatalf("the handshake errors do not name the unknown CA:\n%s", logs.String())
	}
	select {
	case err := <-rogueStarted:
		t.Fatalf("the rogue server started (%v): it has no quorum", err)
	default:
	}
	if r.Server().JetStreamIsCurrent() {
		t.Fatal("the rogue server follows a meta leader")
	}
	// The three go on.
	c0, c1 := newClient(t, good[0]), newClient(t, good[1])
	applyOrders(t, c0)
	seq := placeOrder(t, c0, "o-1", "ada", 1)
	waitCount(t, c1, seq, 1)
	cancel()
	if err := <-rogueStarted; err == nil {
		t.Fatal("the rogue server's start returned no error")
	}
}

// notJoined checks that server s has no route to the server named name
// and no such member in its meta group.
func notJoined(s *node.Node, name string) error {
	rz, err := s.Server().Routez(nil)
	if err != nil {
		return err
	}
	for _, r := range rz.Routes {
		if r.RemoteName == name {
			return fmt.Errorf("a route to %s", name)
		}
	}
	jsz, err := s.Server().Jsz(nil)
	if err != nil {
		return err
	}
	if jsz.Meta != nil {
		if jsz.Meta.Leader == name {
			return fmt.Errorf("%s leads the meta group", name)
		}
		for _, p := range jsz.Meta.Replicas {
			if p.Name == name {
				return fmt.Errorf("%s is in the meta group", name)
			}
		}
	}
	return nil
}

// TestClusterRouteTLSReload: a reload reads the route certificate again,
// so a certificate rotated in place is what the route port presents next.
func TestClusterRouteTLSReload(t *testing.T) {
	cfgs := tlsClusterConfigs(t, 3)
	servers := startServers(t, cfgs)
	rt := cfgs[0].Cluster.TLS
	before := routeCertSerial(t, cfgs[0].Cluster.Listen, rt)

	// Renew s0's certificate under the same CA, in place.
	dir := filepath.Dir(rt.Cert)
	for _, f := range []string{rt.Cert, rt.Key} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tlsgen.Write(dir, tlsgen.Options{Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		t.Fatal(err)
	}
	if err := servers[0].Reload(cfgs[0]); err != nil {
		t.Fatalf("reload: %v", err)
	}
	after := routeCertSerial(t, cfgs[0].Cluster.Listen, rt)
	if after == before {
		t.Fatalf("route port presents certificate %s after the reload, the one from before", after)
	}
	want := certSerial(t, rt.Cert)
	if after != want {
		t.Fatalf("route port presents certificate %s, want the renewed %s", after, want)
	}
	// The cluster still replicates.
	c0, c1 := newClient(t, servers[0]), newClient(t, servers[1])
	applyOrders(t, c0)
	seq := placeOrder(t, c1, "o-1", "ada", 1)
	waitCount(t, c0, seq, 1)
}

// routeCertSerial is the serial of the certificate the route port at addr
// presents, to a route client with the certificate in t.
func routeCertSerial(tb testing.TB, addr string, t *node.TLS) string {
	tb.Helper()
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := os.ReadFile(t.CA)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1",
		MinVersion: tls.VersionTLS12})
	if err != nil {
		tb.Fatalf("TLS to the route port %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func certSerial(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestValidateClusterTLS: cluster.tls needs a certificate, its key and a
// CA; it maps nothing.
func TestValidateClusterTLS(t *testing.T) {
	certs := nodetest.NewCerts(t)
	cert, key := certs.Server()
	for _, tc := range []struct {
		name string
		tls  *node.TLS
		want string // "" for valid
	}{
		{"cert, key and CA", &node.TLS{Cert: cert, Key: key, CA: certs.CA()}, ""},
		{"verify is what routes do anyway", &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Verify: true}, ""},
		{"empty block", &node.TLS{}, ""},
		{"no CA", &node.TLS{Cert: cert, Key: key}, "cluster.tls.ca: required"},
		{"no key", &node.TLS{Cert: cert, CA: certs.CA()}, "cluster.tls.key: required"},
		{"no cert", &node.TLS{Key: key, CA: certs.CA()}, "cluster.tls.cert: required"},
		{"CA alone", &node.TLS{CA: certs.CA()}, "cluster.tls.cert: required"},
		{"missing CA file", &node.TLS{Cert: cert, Key: key, CA: filepath.Join(t.TempDir(), "ca.pem")},
			"cluster.tls.ca: open "},
		{"key of another certificate", &node.TLS{Cert: certs.CA(), Key: key, CA: certs.CA()},
			"cluster.tls.cert: " + certs.CA() + " with key " + key},
		{"map", &node.TLS{Cert: cert, Key: key, CA: certs.CA(), Map: true}, "cluster.tls.map: only tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clusterConfigs(t, 1)[0]
			cfg.Cluster.TLS = tc.tls
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestClusterConfigFileTLS: cluster.tls is read from a config file.
func TestClusterConfigFileTLS(t *testing.T) {
	certs := nodetest.NewCerts(t)
	cert, key := certs.Server()
	file := filepath.Join(t.TempDir(), "s1.yaml")
	yaml := fmt.Sprintf(`name: shop
server_name: s1
cluster:
  listen: 10.0.0.1:6222
  routes: [nats-route://10.0.0.1:6222, nats-route://10.0.0.2:6222, nats-route://10.0.0.3:6222]
  tls:
    cert: %s
    key: %s
    ca: %s
`, cert, key, certs.CA())
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	if err := node.LoadConfigFile(&cfg, file); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := node.TLS{Cert: cert, Key: key, CA: certs.CA()}
	if cfg.Cluster == nil || cfg.Cluster.TLS == nil || *cfg.Cluster.TLS != want {
		t.Fatalf("cluster: got %+v, want tls %+v", cfg.Cluster, want)
	}
}

// TestClusterListenOffLoopback: a route listener off loopback needs route
// TLS (or insecure): without it, anyone who reaches the port could join.
func TestClusterListenOffLoopback(t *testing.T) {
	certs := nodetest.NewCerts(t)
	cert, key := certs.Server()
	for _, tc := range []struct {
		name     string
		tls      *node.TLS
		insecure bool
		refused  bool
	}{
		{"plain routes", nil, false, true},
		{"plain routes, insecure", nil, true, false},
		{"route TLS", &node.TLS{Cert: cert, Key: key, CA: certs.CA()}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clusterConfigs(t, 1)[0]
			_, port, _ := strings.Cut(cfg.Cluster.Listen, ":")
			cfg.Cluster.Listen = "0.0.0.0:" + port
			cfg.Cluster.TLS, cfg.Insecure = tc.tls, tc.insecure
			// New validates the config, Start checks the listeners again; a
			// server of a cluster then waits for a quorum: a start that
			// passes both waits until ctx ends.
			n, err := node.New(cfg, testLogger(t))
			if err == nil {
				defer n.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				err = n.Start(ctx)
			}
			refused := err != nil && strings.Contains(err.Error(), "is not a loopback address")
			if refused != tc.refused {
				t.Fatalf("start: %v; want refused %v", err, tc.refused)
			}
			if tc.refused && !strings.Contains(err.Error(), "cluster.tls") {
				t.Fatalf("the refusal does not name cluster.tls: %v", err)
			}
		})
	}
}

// startServersLogging is startServers with the servers' warnings and
// errors written to out.
func startServersLogging(t testing.TB, cfgs []node.Config, out io.Writer) []*node.Node {
	t.Helper()
	return startServersWith(t, cfgs, func(cfg node.Config) hclog.Logger {
		return hclog.New(&hclog.LoggerOptions{Name: cfg.ServerName, Level: hclog.Warn, Output: out})
	})
}
