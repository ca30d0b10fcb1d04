package monitor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// shutdownTimeout bounds the wait for requests under way at Close.
const shutdownTimeout = 5 * time.Second

// Readiness is what /readyz answers: ready, or the reasons why not.
type Readiness struct {
	Ready bool `json:"ready"`
	// NotReady names each part that is not ready and why, e.g.
	// "projection orders v2: building (applied 10 of 500)".
	NotReady []string `json:"not_ready,omitempty"`
}

// Config is what the monitor serves.
type Config struct {
	// Addr is host:port; port -1 or 0 picks a free port.
	Addr string
	// NATS is the embedded server whose pages are served.
	NATS *server.Server
	// Ready reports readiness; nil: ready once the monitor runs.
	Ready func(ctx context.Context) Readiness
	// Metrics serves /metrics; nil: 404.
	Metrics http.Handler
	// CertFile and KeyFile, when set, serve HTTPS with that certificate
	// (http_tls); ReloadTLS reads them again.
	CertFile, KeyFile string
	// Console serves the web console under /ui/ (node/console); nil: not
	// served.
	Console http.Handler
}

// Monitor is the node's HTTP server.
type Monitor struct {
	cfg Config
	log hclog.Logger

	ln        net.Listener
	cert      *certificate // nil without TLS
	srv       *http.Server
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New returns a monitor; Start listens.
func New(cfg Config, logger hclog.Logger) *Monitor {
	return &Monitor{cfg: cfg, log: logger.Named("monitor")}
}

// Start listens on the address and serves until Close.
func (m *Monitor) Start(context.Context) error {
	host, port, err := net.SplitHostPort(m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if port == "-1" {
		port = "0"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if m.cfg.CertFile != "" || m.cfg.KeyFile != "" {
		if m.cert, err = loadCertificate(m.cfg.CertFile, m.cfg.KeyFile); err != nil {
			ln.Close()
			return fmt.Errorf("http_tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: m.cert.get})
	}
	m.ln = ln
	m.srv = &http.Server{Handler: m.mux(), ReadHeaderTimeout: 10 * time.Second}
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("http server stopped", "error", err)
		}
	}()
	return nil
}

// URL is the base URL of the monitor, "" before Start.
func (m *Monitor) URL() string {
	if m.ln == nil {
		return ""
	}
	if m.cert != nil {
		return "https://" + m.ln.Addr().String()
	}
	return "http://" + m.ln.Addr().String()
}

// ReloadTLS reads the certificate and key files again: connections from
// now on get the new certificate, those open keep theirs. On an error the
// old certificate stays. Without TLS it does nothing.
func (m *Monitor) ReloadTLS() error {
	if m.cert == nil {
		return nil
	}
	if err := m.cert.reload(); err != nil {
		return fmt.Errorf("http_tls: %w", err)
	}
	m.log.Info("http_tls: certificate reloaded", "cert", m.cfg.CertFile)
	return nil
}

// Close stops the server, letting requests under way finish for a
// moment. Safe to call twice.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() {
		if m.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if m.closeErr = m.srv.Shutdown(ctx); m.closeErr != nil {
			// Requests still under way (a slow scrape) must not read the
			// parts while they close.
			m.srv.Close()
		}
		<-m.done
	})
	return m.closeErr
}

func (m *Monitor) mux() *http.ServeMux {
	mux := http.NewServeMux()
	s := m.cfg.NATS
	// nats-server's pages, at the paths its own monitor uses.
	for path, h := range map[string]http.HandlerFunc{
		server.RootPath: s.HandleRoot, server.VarzPath: s.HandleVarz, server.ConnzPath: s.HandleConnz,
		server.RoutezPath: s.HandleRoutez, server.GatewayzPath: s.HandleGatewayz, server.LeafzPath: s.HandleLeafz,
		server.SubszPath: s.HandleSubsz, server.StackszPath: s.HandleStacksz, server.AccountzPath: s.HandleAccountz,
		server.AccountStatzPath: s.HandleAccountStatz, server.JszPath: s.HandleJsz, server.HealthzPath: s.HandleHealthz,
		server.IPQueuesPath: s.HandleIPQueuesz, server.RaftzPath: s.HandleRaftz,
	} {
		mux.HandleFunc(path, h)
	}
	mux.HandleFunc("/readyz", m.handleReady)
	if m.cfg.Console != nil {
		mux.Handle("/ui/", m.cfg.Console)
	}
	if m.cfg.Metrics != nil {
		mux.Handle("/metrics", m.cfg.Metrics)
	}
	return mux
}

// handleReady answers 200 when the node is ready, else 503; both with the
// JSON Readiness.
func (m *Monitor) handleReady(w http.ResponseWriter, r *http.Request) {
	rd := Readiness{Ready: true}
	if m.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		rd = m.cfg.Ready(ctx)
	}
	w.Header().Set("Content-Type", "application/json")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rd)
}
