package api

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/node/rejected"
	"github.com/datamesh/datamesh/projection"
)

// opTimeout bounds the work of one admin request (apply, promote, ...).
const opTimeout = 10 * time.Second

// Config is what the API needs of the node's configuration.
type Config struct {
	Node             string
	MaxBatch         int
	RequireContracts bool
	// LeafURL is where peers link to this node ("" if off), for discovery.
	LeafURL string
	// Middleware wraps every endpoint's handler, the first outermost.
	Middleware []Middleware
	// Server is this server's name; Servers, on a cluster, lists every
	// server of the node (nil standalone).
	Server  string
	Servers func() []string
}

// Middleware wraps the handler of one endpoint (by its name in the micro
// service: append, read, query, ...). Programs that embed a node use it for
// tracing or metrics; the benchmark's own test slows appends down with it,
// to prove a slow append path is caught.
type Middleware func(endpoint string, h micro.HandlerFunc) micro.HandlerFunc

// Deps are the parts the API serves. It is the edge where they meet, so it
// takes them as they are rather than through interfaces.
type Deps struct {
	// Conn is the node's connection: the service's subscriptions and the
	// replies sent off the handlers.
	Conn        *nats.Conn
	Log         *eventlog.Log
	Appender    eventlog.Appender
	Registry    *registry.Registry
	Projections *projection.Manager
	Mesh        *meshlink.Mesh
	// Apply applies a request's resources, all or none.
	Apply func(ctx context.Context, body []byte, force bool) ([]protocol.ApplyResult, error)
	// Observer is told of appends and queries (the node's metrics); nil:
	// nothing is.
	Observer Observer
	// Backup takes the backups dm.admin.backup streams.
	Backup *backup.Runner
	// Rejected keeps the refused appends published without a reply.
	Rejected *rejected.Record
	// Reload re-reads the node's config and applies it (dm.admin.reload).
	Reload func() error
	// Barrier, on a clustered node, waits until this server knows every
	// resource change stored through any server; promote, rollback and
	// retire start with it (apply does, in the node). Nil standalone.
	Barrier func(ctx context.Context) error
}

// API is the node's micro service.
type API struct {
	cfg  Config
	deps Deps
	log  hclog.Logger
	svc  micro.Service

	// ctx ends at Close: requests waiting off their handler (a query for
	// its min_seq) give up then.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the requests answered off their handler.
	wg sync.WaitGroup
	// gate lets handlers run while the API is open: each holds a read
	// lock; Close takes the write lock, so it waits for the handlers under
	// way, and later ones answer unavailable (see gated).
	gate      sync.RWMutex
	serving   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	// replayMu runs one replay of the rejected record at a time.
	replayMu sync.Mutex
	// runner answers for the mesh on the server that runs it (cluster).
	runner runnerService
}

// New returns the API; Start registers its endpoints.
func New(cfg Config, deps Deps, logger hclog.Logger) *API {
	return &API{cfg: cfg, deps: deps, log: logger.Named("api")}
}

// Start registers the endpoints as the NATS micro service "datamesh", so
// $SRV.PING/INFO/STATS describe them.
func (a *API) Start(ctx context.Context) error {
	a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	svc, err := micro.AddService(a.deps.Conn, micro.Config{
		Name:        protocol.ServiceName,
		Version:     protocol.Version,
		Description: "DataMesh node " + a.cfg.Node + ": event log, contracts, projections, discovery",
		Metadata:    map[string]string{"node": a.cfg.Node},
	})
	if err != nil {
		return err
	}
	a.svc = svc
	for _, e := range a.endpoints() {
		h, mw := e.h, e.name
		if mw == appendOnServer {
			mw = "append"
		}
		for i := len(a.cfg.Middleware) - 1; i >= 0; i-- {
			h = a.cfg.Middleware[i](mw, h)
		}
		if err := svc.AddEndpoint(e.name, a.gated(h), micro.WithEndpointSubject(e.subject)); err != nil {
			return err
		}
	}
	// The subscriptions must be in place before Start returns, or a
	// client's first request can find no responders.
	if err := a.deps.Conn.Flush(); err != nil {
		return err
	}
	a.serving.Store(true)
	return nil
}

// Serving reports whether the API takes requests: started and not closing.
func (a *API) Serving() bool { return a.serving.Load() }

type endpoint struct {
	name, subject string
	h             micro.HandlerFunc
}

// appendOnServer is the endpoint of the appends addressed to this server
// of a cluster; middleware knows it as "append", as the appends it is.
const appendOnServer = "append-on-server"

func (a *API) endpoints() []endpoint {
	eps := []endpoint{
		{"append", protocol.SubjectAppend + ".>", a.handleAppend},
		{"read", protocol.SubjectRead + ".>", a.handleRead},
		{"apply", protocol.SubjectApply, a.handleApply},
		{"discovery", protocol.SubjectDiscovery, a.handleDiscovery},
		{"query", protocol.SubjectQuery + ".>", a.handleQuery},
		{"projections", protocol.SubjectProjections, a.handleProjections},
		{"retry", protocol.SubjectRetry, a.handleRetry},
		{"promote", protocol.SubjectPromote, a.handlePromote},
		{"rollback", protocol.SubjectRollback, a.handleRollback},
		{"retire", protocol.SubjectRetire, a.handleRetire},
		{"mesh", protocol.SubjectMesh, a.onRunner("mesh", a.handleMesh)},
		{"link-retry", protocol.SubjectLinkRetry, a.onRunner("link-retry", a.handleLinkRetry)},
		{"dead-letters", protocol.SubjectDeadLetters, a.handleDeadLetters},
		{"replay", protocol.SubjectReplay, a.onRunner("replay", a.handleReplay)},
		{"delete", protocol.SubjectDelete, a.handleDelete},
		{"backup", protocol.SubjectBackup, a.handleBackup},
		{"restore", protocol.SubjectRestore, a.handleRestore},
		{"reload", protocol.SubjectReload, a.handleReload},
		// On a cluster each server also answers for its own projections.
		{"server-projections", protocol.SubjectServer + "." + a.cfg.Server + ".projections", a.handleProjections},
		{"rejected-list", protocol.SubjectRejectedList, a.withRejected(a.handleRejectedList)},
		{"rejected-replay", protocol.SubjectRejectedReplay, a.withRejected(a.handleRejectedReplay)},
		{"rejected-status", protocol.SubjectRejectedStatus, a.withRejected(a.handleRejectedStatus)},
	}
	if a.cfg.Servers != nil {
		// On a cluster: appends handled by this server, not by a random
		// member of the queue group (node/client sends there).
		eps = append(eps, endpoint{appendOnServer, AppendOnPrefix(a.cfg.Server) + ".>", a.handleAppendOn})
	}
	return eps
}

// Close stops the service and waits for the handlers under way and the
// requests answered off their handlers; later requests answer unavailable.
// Appends already handed to the log are answered by the log (its Close
// waits for them). Safe to call twice.
func (a *API) Close() error {
	a.closeOnce.Do(func() {
		a.serving.Store(false)
		_ = a.ServeRunner(false)
		if a.svc != nil {
			// Stop only starts draining the endpoints.
			a.closeErr = a.svc.Stop()
		}
		a.gate.Lock()
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
	})
	return a.closeErr
}

// gated runs h unless the API is closing, in which case the request gets
// an unavailable error.
func (a *API) gated(h micro.HandlerFunc) micro.HandlerFunc {
	return func(req micro.Request) {
		if !a.gate.TryRLock() {
			replyError(req, protocol.NewError(protocol.CodeUnavailable, "the node is shutting down"))
			return
		}
		defer a.gate.RUnlock()
		h(req)
	}
}

// goAnswer answers a request off its handler, so that one slow request does
// not hold up the others; Close waits for it.
func (a *API) goAnswer(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// opContext bounds one admin request.
func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// respondJSON answers req with v (see respondBytes).
func respondJSON(req micro.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		replyError(req, protocol.NewError(protocol.CodeInternal, "encode reply: %v", err))
		return
	}
	respondBytes(req, b)
}

// respondBytes answers req with b, or with an error reply when b cannot be
// sent: never with silence.
func respondBytes(req micro.Request, b []byte) {
	if err := req.Respond(b); err != nil {
		replyError(req, replyFailed(err))
	}
}

// replyFailed is the error answer to a reply that could not be sent.
func replyFailed(err error) *protocol.Error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return protocol.NewError(protocol.CodeTooLarge, "the reply is larger than the server's max payload; ask for less (a limit, a page)")
	}
	return protocol.NewError(protocol.CodeUnavailable, "reply: %v", err)
}

// replyError answers a request synchronously, inside its handler, so the
// micro service counts the error in its stats.
func replyError(req micro.Request, e *protocol.Error) {
	_ = req.Error(e.StatusText(), e.Message, e.Body(), micro.WithHeaders(micro.Headers{"Content-Type": {"application/json"}}))
}

// fail answers req with err as a wire error.
func fail(req micro.Request, err error) { replyError(req, WireError(err)) }

// handleReload re-reads the config and applies it, as SIGHUP does; a
// refused config is a bad_request that says why, and the old one stays.
func (a *API) handleReload(req micro.Request) {
	if a.deps.Reload == nil {
		replyError(req, protocol.NewError(protocol.CodeUnavailable, "this node cannot reload its config"))
		return
	}
	if err := a.deps.Reload(); err != nil {
		replyError(req, protocol.NewError(protocol.CodeBadRequest, "%v", err))
		return
	}
	respondJSON(req, map[string]string{"status": "reloaded"})
}

// respond answers a request from outside its handler (after an async ack).
func (a *API) respond(reply string, v any) {
	if reply == "" {
		return
	}
	var b []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		b, err = m.MarshalJSON() // encoding/json would look its type up first
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		a.respondError(reply, protocol.NewError(protocol.CodeInternal, "encode reply: %v", err))
		return
	}
	if err := a.deps.Conn.Publish(reply, b); err != nil {
		a.respondError(reply, replyFailed(err))
	}
}

// respondError sends an error reply with the micro error headers from outside a handler.
func (a *API) respondError(reply string, e *protocol.Error) {
	if reply == "" {
		return
	}
	m := &nats.Msg{Subject: reply, Data: e.Body(), Header: nats.Header{
		micro.ErrorHeader:     {e.Message},
		micro.ErrorCodeHeader: {e.StatusText()},
		"Content-Type":        {"application/json"},
	}}
	if err := a.deps.Conn.PublishMsg(m); err != nil {
		a.log.Warn("error reply failed", "error", err)
	}
}
