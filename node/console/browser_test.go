package console_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is where Debian's package puts the browser (.ci/run installs it).
const chromium = "/usr/bin/chromium"

var updateScreenshots = flag.Bool("update-screenshots", false, "write the console's screenshots to docs/console/")

// shots says whether this run writes the screenshots: -update-screenshots
// or DATAMESH_UPDATE_SCREENSHOTS=1.
func shots() bool { return *updateScreenshots || os.Getenv("DATAMESH_UPDATE_SCREENSHOTS") == "1" }

// page is one browser tab on the console, failing t on any error.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// newPage starts a headless Chromium with a fresh profile. The flags keep
// it off the network: without them it waits on a closed network.
func newPage(t *testing.T, base string) *page {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no Chromium at %s (apt-get install chromium; .ci/run installs it): %v", chromium, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	p := &page{t: t, ctx: ctx, base: base}
	// the first action starts the browser: no timeout on it
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return p
}

func (p *page) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// eval runs a script for its effect.
func (p *page) eval(script string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](script, chromedp.EvalAwaitPromise)); err != nil {
		p.t.Fatalf("browser: %s: %v", script, err)
	}
}

// waitJS waits until the expression is true, within limit.
func (p *page) waitJS(limit time.Duration, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, limit)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[any](expr, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		main := p.text("main")
		if len(main) > 800 {
			main = main[:800] + "…"
		}
		p.t.Fatalf("waiting for %s: %v (page: %s)", expr, err, main)
	}
}

// text is the text of the first element sel matches ("" if none).
func (p *page) text(sel string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	return strings.TrimSpace(s)
}

// waitText waits until sel's text is want.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	p.waitJS(10*time.Second, fmt.Sprintf(`((document.querySelector(%q) || {}).textContent || "").trim() === %q`, sel, want))
}

// waitContains waits until sel's text contains want.
func (p *page) waitContains(sel, want string) {
	p.t.Helper()
	p.waitJS(10*time.Second, fmt.Sprintf(`((document.querySelector(%q) || {}).textContent || "").includes(%q)`, sel, want))
}

// open shows a page of the console and waits until it has rendered.
func (p *page) open(name string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`location.hash = %q`, "#"+name))
	p.waitJS(10*time.Second, fmt.Sprintf(`document.getElementById("main").dataset.page === %q && document.getElementById("updated").textContent !== ""`, strings.Split(name, "/")[0]))
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.run(chromedp.Click(chromedp.CSS(sel)))
}

// set gives a form field a value, as typing and leaving it would.
func (p *page) set(sel, value string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event("change")); })()`, sel, value))
}

// screenshot writes docs/console/<name>-wide.png and -narrow.png (1280×800
// and 400×800) when the run asks for screenshots.
func (p *page) screenshot(name string) {
	p.t.Helper()
	if !shots() {
		return
	}
	for _, v := range []struct {
		suffix string
		w, h   int64
	}{{"wide", 1280, 800}, {"narrow", 400, 800}} {
		p.run(chromedp.EmulateViewport(v.w, v.h))
		// a click may have scrolled a table sideways: show each from its start
		p.eval(`document.querySelectorAll(".scroll").forEach((e) => { e.scrollLeft = 0; }); window.scrollTo(0, 0)`)
		p.eval(`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))`)
		ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			p.t.Fatalf("screenshot: %v", err)
		}
		file := filepath.Join("..", "..", "docs", "console", name+"-"+v.suffix+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	p.run(chromedp.EmulateViewport(1280, 800))
}

// TestConsoleInBrowser drives the console in headless Chromium against a
// node with services, the orders example and a link to a second node: it
// signs in, loads every page, checks the figures shown against the API's
// answers, runs a query, promotes and rolls back a projection version as
// an admin, and is refused as a service without admin rights.
func TestConsoleInBrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no Chromium at %s (apt-get install chromium; .ci/run installs it)", chromium)
	}
	f := newMeshFixture(t)
	srv := serveConsole(t, f.shop, 10*time.Second)
	p := newPage(t, srv.URL)
	p.run(chromedp.Navigate(srv.URL + "/ui/"))
	p.waitJS(10*time.Second, `document.getElementById("login-user") !== null`)
	p.screenshot("login")
	signIn(p, "ops")

	checkOverview(t, p, f)
	checkCatalog(t, p, f)
	checkProjections(t, p, f)
	checkLinks(t, p, f)
	checkMesh(t, p)
	checkEvents(t, p, f)
	checkQuery(t, p, f)
	checkRefused(t, p, f)
}

func signIn(p *page, user string) {
	p.t.Helper()
	p.set("#login-user", user)
	p.set("#login-password", user+"-secret")
	p.click("#login-submit")
	p.waitText("[data-k=who]", "signed in as "+user)
	p.open("overview")
}

func checkOverview(t *testing.T, p *page, f *meshFixture) {
	ps, err := f.ops.Projections()
	if err != nil {
		t.Fatal(err)
	}
	p.waitText("[data-k=log-last-seq]", strconv.FormatUint(f.lastSeq, 10))
	p.waitText("[data-k=log-messages]", strconv.FormatUint(f.lastSeq, 10))
	p.waitText("[data-k=node]", "shop")
	p.waitText("[data-k=ready]", "ready")
	for _, s := range ps.Projections {
		p.waitContains(fmt.Sprintf("[data-k=proj-orders-v%d]", s.Version), fmt.Sprintf("%d docs", s.Documents))
	}
	p.waitContains("[data-k=link-payments-from-billing]", "2 imported")
	p.waitContains("[data-k=attention]", "link payments-from-billing: 1 dead letters")
	// the second refresh has a rate over its window
	p.waitJS(10*time.Second, `document.querySelector("[data-k=append-rate]").textContent !== "measuring…"`)
	p.screenshot("overview")
}
