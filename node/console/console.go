package console

import (
	"context"
	"embed"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds each API request the console makes for a page.
	DefaultTimeout = 10 * time.Second
	// DefaultIdle is how long a browser session lives without a request.
	DefaultIdle = 30 * time.Minute
	// DefaultMaxSessions bounds the sessions (one connection each).
	DefaultMaxSessions = 256
)

// Prefix is the path the console is served under.
const Prefix = "/ui/"

//go:embed ui
var uiFiles embed.FS

// Config is what the console needs of the node.
type Config struct {
	// Node and Version name the node in the page's title bar before the
	// API has answered (and when it does not).
	Node    string
	Version string
	// Connect opens an in-process connection that signs in with the
	// options' identity (node.Node.ConnectAs): never one with the node's
	// own rights.
	Connect func(opts ...nats.Option) (*nats.Conn, error)
	// Timeout bounds each API request (DefaultTimeout when 0).
	Timeout time.Duration
	// Idle ends a session unused that long (DefaultIdle when 0).
	Idle time.Duration
	// MaxSessions bounds the open sessions (DefaultMaxSessions when 0);
	// a sign-in beyond it ends the least recently used one.
	MaxSessions int
}

// Console serves the web console. Its zero value is not usable: call New.
type Console struct {
	cfg      Config
	log      hclog.Logger
	sessions *sessions
	handler  http.Handler

	closeOnce sync.Once
}

// New returns a console; Handler serves it.
func New(cfg Config, logger hclog.Logger) *Console {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	c := &Console{cfg: cfg, log: logger.Named("console")}
	c.sessions = newSessions(cfg, c.log)
	c.handler = c.routes()
	return c
}

// Start does nothing but complete the lifecycle every part of a node has:
// sessions expire as requests come, without a goroutine of their own.
func (c *Console) Start(context.Context) error { return nil }

// Close ends every session and closes its connection. Safe to call twice.
func (c *Console) Close() error {
	c.closeOnce.Do(c.sessions.closeAll)
	return nil
}

// Handler serves the console under Prefix (/ui/): the page, its files and
// its JSON API under /ui/api/. Mount it at Prefix without stripping it.
func (c *Console) Handler() http.Handler { return c.handler }

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux.Handle(Prefix, http.StripPrefix(Prefix, http.FileServer(http.FS(static))))
	mux.HandleFunc("GET /ui/api/session", c.handleSession)
	mux.HandleFunc("POST /ui/api/login", c.handleLogin)
	mux.HandleFunc("POST /ui/api/logout", c.handleLogout)
	mux.HandleFunc("GET /ui/api/overview", c.withSession(c.handleOverview))
	mux.HandleFunc("GET /ui/api/catalog", c.withSession(c.handleCatalog))
	mux.HandleFunc("GET /ui/api/projections", c.withSession(c.handleProjections))
	mux.HandleFunc("POST /ui/api/projections/{action}", c.withSession(c.handleProjectionAction))
	mux.HandleFunc("GET /ui/api/mesh", c.withSession(c.handleMesh))
	mux.HandleFunc("GET /ui/api/deadletters", c.withSession(c.handleDeadLetters))
	mux.HandleFunc("POST /ui/api/replay", c.withSession(c.handleReplay))
	mux.HandleFunc("GET /ui/api/events", c.withSession(c.handleEvents))
	mux.HandleFunc("POST /ui/api/query", c.withSession(c.handleQuery))
	mux.HandleFunc("/ui/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Code: "not_found", Message: "no console API at " + r.Method + " " + r.URL.Path, Status: http.StatusNotFound})
	})
	return secureHeaders(mux)
}

// secureHeaders keeps the page to its own files: no inline script, no
// framing, no guessing of content types.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
