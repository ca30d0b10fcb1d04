package embed

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster makes the server one of a JetStream cluster.
type Cluster struct {
	Name   string
	Listen string   // host:port of the route listener
	Routes []string // the other servers' route URLs
	// TLS makes the routes mutual TLS: each server presents TLS.Cert and
	// accepts only route certificates signed by TLS.CA (nil: plain TCP).
	TLS *TLS
}

// clusterOptions sets the cluster's options: routes, the cluster name, and
// sync_always when the node asks for fsync durability (in a cluster,
// JetStream's quorum acknowledges an append, so each server must have
// fsynced it: the node's own group commit only covers a one-replica log).
func clusterOptions(cfg Config, opts *server.Options) error {
	c := cfg.Cluster
	if c == nil {
		return nil
	}
	host, port, err := SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("cluster.listen: %w", err)
	}
	opts.Cluster.Name, opts.Cluster.Host, opts.Cluster.Port = c.Name, host, port
	// Servers reach each other at the routes given, never at addresses the
	// server would gossip.
	opts.Cluster.NoAdvertise = true
	routes := ""
	for i, r := range c.Routes {
		if i > 0 {
			routes += ","
		}
		routes += r
	}
	opts.Routes = server.RoutesFromStr(routes)
	opts.SyncAlways = cfg.SyncAlways
	if c.TLS.Enabled() {
		tc, err := routeTLS(c.TLS)
		if err != nil {
			return err
		}
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, tlsTimeout
	}
	return nil
}

// routeTLS is the routes' TLS config, as nats-server builds it from a
// cluster's tls block: a route is both a server and a client, so it
// requires and verifies the other side's certificate against the CA, and
// verifies the server it dials against the same CA (RootCAs), by the host
// of its route URL. It reads the files every time: a reload takes up
// rotated certificates.
func routeTLS(t *TLS) (*tls.Config, error) {
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA, Verify: true})
	if err != nil {
		return nil, fmt.Errorf("cluster.tls: %w", err)
	}
	if tc.ClientCAs == nil {
		return nil, fmt.Errorf("cluster.tls.ca: required: the CA that signs every server's route certificate")
	}
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	tc.RootCAs = tc.ClientCAs
	return tc, nil
}

// quorumWait bounds how long Start waits for the cluster's JetStream meta
// group to elect a leader (a quorum of servers must be up).
const quorumWait = 5 * time.Minute

// waitQuorum waits, in a cluster, until the JetStream meta group has a
// leader this server follows: before that no stream can be created or
// found. The first server of a cluster to start waits for a quorum of
// the others.
func (s *Server) waitQuorum(ctx context.Context) error {
	if s.cfg.Cluster == nil {
		return nil
	}
	deadline := time.Now().Add(quorumWait)
	next := time.Now().Add(5 * time.Second)
	for !s.srv.JetStreamIsCurrent() {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: no JetStream quorum after %v: are a majority of its servers up, and are cluster.routes right?", s.cfg.Cluster.Name, quorumWait)
		}
		if time.Now().After(next) {
			s.log.Info("waiting for a JetStream quorum (a majority of the cluster's servers)", "cluster", s.cfg.Cluster.Name,
				"routes", s.srv.NumRoutes())
			next = time.Now().Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
