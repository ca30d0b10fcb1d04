package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/projection"
)

type sessionReply struct {
	Node          string `json:"node"`
	SignedIn      bool   `json:"signed_in"`
	User          string `json:"user"`
	Anonymous     bool   `json:"anonymous"`
	LoginRequired bool   `json:"login_required"`
}

type section struct {
	Data  json.RawMessage `json:"data"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Subject string `json:"subject"`
	} `json:"error"`
}

// TestAnonymousNodeNeedsNoSignIn: without services the console opens an
// anonymous session by itself, in a cookie that scripts and other sites
// cannot use, and shows the log as the API answers it.
func TestAnonymousNodeNeedsNoSignIn(t *testing.T) {
	n := startNode(t, nodeConfig(t, "shop"))
	c := serviceClient(t, n, "")
	applyFile(t, c, "contracts.yaml")
	applyFile(t, c, "projection-orders.yaml")
	last := appendEvent(t, c, "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`)
	srv := serveConsole(t, n, 0)

	resp, err := http.Get(srv.URL + "/ui/api/session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"datamesh_console=", "Path=/ui/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(ck, want) {
			t.Fatalf("Set-Cookie %q: want %s", ck, want)
		}
	}
	b := newBrowser(t, srv)
	var s sessionReply
	if b.do("GET", "/ui/api/session", "", &s); !s.SignedIn || !s.Anonymous || s.LoginRequired || s.Node != "shop" {
		t.Fatalf("session: got %+v, want signed in anonymously on shop", s)
	}
	var o struct {
		Node string  `json:"node"`
		Log  section `json:"log"`
	}
	if st := b.do("GET", "/ui/api/overview", "", &o); st != 200 || o.Log.Error != nil {
		t.Fatalf("overview: status %d, log %+v", st, o.Log.Error)
	}
	var log struct {
		LastSeq  uint64 `json:"last_seq"`
		Messages uint64 `json:"messages"`
	}
	if err := json.Unmarshal(o.Log.Data, &log); err != nil {
		t.Fatal(err)
	}
	if log.LastSeq != last || log.Messages != last {
		t.Fatalf("log: got %+v, want last seq and count %d", log, last)
	}
}

// TestGrantsDecideWhatTheConsoleShows: on a node with services the console
// asks for a sign-in, and a request the identity may not make is refused
// at once, naming its subject, not after the request's timeout.
func TestGrantsDecideWhatTheConsoleShows(t *testing.T) {
	cfg := nodeConfig(t, "shop")
	cfg.Services = testServices
	n := startNode(t, cfg)
	ops := serviceClient(t, n, "ops")
	applyFile(t, ops, "contracts.yaml")
	applyFile(t, ops, "projection-orders.yaml")
	appendEvent(t, ops, "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`)
	const timeout = 10 * time.Second
	srv := serveConsole(t, n, timeout)
	b := newBrowser(t, srv)

	var s sessionReply
	if b.do("GET", "/ui/api/session", "", &s); s.SignedIn || !s.LoginRequired {
		t.Fatalf("session: got %+v, want a sign-in asked for", s)
	}
	var e apiErr
	if st := b.do("GET", "/ui/api/overview", "", &e); st != 401 || e.Error.Code != "signed_out" {
		t.Fatalf("overview without a session: got %d %+v, want 401 signed_out", st, e)
	}
	if st := b.do("POST", "/ui/api/login", `{"user":"viewer","password":"wrong"}`, &e); st != 401 {
		t.Fatalf("wrong password: got %d %+v, want 401", st, e)
	}
	if st := b.do("POST", "/ui/api/login", `{"user":"viewer","password":"viewer-secret"}`, &s); st != 200 || s.User != "viewer" {
		t.Fatalf("sign in: got %d %+v", st, s)
	}

	start := time.Now()
	e = apiErr{}
	st := b.do("POST", "/ui/api/projections/promote", `{"name":"orders","version":1}`, &e)
	if took := time.Since(start); took > timeout/2 {
		t.Fatalf("the refusal took %v: the request waited for its timeout (%v)", took, timeout)
	}
	if st != 403 || e.Error.Code != "not_allowed" || e.Error.Message != "not allowed: dm.admin.projection.promote" {
		t.Fatalf("promote as viewer: got %d %+v, want 403 not allowed: dm.admin.projection.promote", st, e)
	}
	var p struct {
		Status  section `json:"status"`
		Catalog section `json:"catalog"`
	}
	b.do("GET", "/ui/api/projections", "", &p)
	if p.Status.Error == nil || p.Status.Error.Subject != "dm.admin.projections" || p.Catalog.Error != nil {
		t.Fatalf("projections as viewer: got status %+v catalog %+v, want status refused, catalog shown", p.Status.Error, p.Catalog.Error)
	}
	var res projection.Result
	if st := b.do("POST", "/ui/api/query", `{"name":"orders","query":{"get":"o-1"}}`, &res); st != 200 || res.Seq != 1 || !strings.Contains(string(res.Doc), `"c-1"`) {
		t.Fatalf("query as viewer: got %d %+v", st, res)
	}

	// Signing in again as the admin replaces the session; its status shows.
	if st := b.do("POST", "/ui/api/login", `{"user":"ops","password":"ops-secret"}`, &s); st != 200 || s.User != "ops" {
		t.Fatalf("sign in as ops: got %d %+v", st, s)
	}
	p.Status, p.Catalog = section{}, section{}
	if b.do("GET", "/ui/api/projections", "", &p); p.Status.Error != nil || !strings.Contains(string(p.Status.Data), `"state":"live"`) {
		t.Fatalf("projections as ops: got %+v %s", p.Status.Error, p.Status.Data)
	}
	if st := b.do("POST", "/ui/api/logout", "{}", nil); st != 200 {
		t.Fatalf("logout: %d", st)
	}
	if st := b.do("GET", "/ui/api/projections", "", &e); st != 401 {
		t.Fatalf("after logout: got %d, want 401", st)
	}
}

// TestPostNeedsTheConsoleHeader: a form another site posts cannot act.
func TestPostNeedsTheConsoleHeader(t *testing.T) {
	n := startNode(t, nodeConfig(t, "shop"))
	srv := serveConsole(t, n, 0)
	resp, err := http.Post(srv.URL+"/ui/api/login", "application/json", strings.NewReader(`{"user":"a","password":"b"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without the header: got %d, want 403", resp.StatusCode)
	}
}

// TestStaticFiles: the page and its scripts come from the binary, with a
// policy that allows no script but its own.
func TestStaticFiles(t *testing.T) {
	n := startNode(t, nodeConfig(t, "shop"))
	srv := serveConsole(t, n, 0)
	for path, want := range map[string]string{
		"/ui/":               `src="js/app.js"`,
		"/ui/js/app.js":      "POLL_MS",
		"/ui/style.css":      "--accent",
		"/ui/js/mesh.js":     "Mesh map",
		"/ui/js/overview.js": "Overview",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: got %d, want a body with %q", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Fatalf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if strings.HasSuffix(path, ".js") && !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
			t.Fatalf("GET %s: Content-Type %q", path, resp.Header.Get("Content-Type"))
		}
	}
}
