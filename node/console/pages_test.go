package console_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/projection"
)

// The checks of TestConsoleInBrowser, one per page: each compares what the
// page shows with what the API answers the admin.

func checkCatalog(t *testing.T, p *page, f *meshFixture) {
	cat, err := f.ops.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	p.open("catalog")
	p.waitJS(10*time.Second, fmt.Sprintf(`document.querySelectorAll("#catalog tr[data-row*='.']").length >= %d`, len(cat.EventTypes)))
	for _, e := range cat.EventTypes {
		p.waitContains(fmt.Sprintf(`tr[data-row="%s.%s"]`, e.Aggregate, e.Type), fmt.Sprintf("v%d", e.Version))
	}
	p.waitContains(`tr[data-row="orders.v1"]`, "active")
	p.waitContains(`tr[data-row="orders.v2"]`, "by_item_count")
	p.waitContains(`tr[data-row="public-orders"]`, "billing")
	p.waitContains(`tr[data-row="public-orders"]`, "email")
	p.waitContains(`tr[data-row="payments-from-billing"]`, "billing")
	p.waitContains(`[data-peer="billing"]`, "payments")
	p.waitContains("[data-k=discovery]", `"node": "shop"`)
	p.screenshot("catalog")
}

func activeVersion(t *testing.T, c *client.Client) int {
	t.Helper()
	ps, err := c.Projections()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ps.Projections {
		if s.Active {
			return s.Version
		}
	}
	return 0
}

func checkProjections(t *testing.T, p *page, f *meshFixture) {
	ps, err := f.ops.Projections()
	if err != nil {
		t.Fatal(err)
	}
	p.open("projections")
	for _, s := range ps.Projections {
		row := fmt.Sprintf(`tr[data-row="orders.v%d"]`, s.Version)
		p.waitText(row+" [data-k=documents]", strconv.Itoa(s.Documents))
		p.waitText(row+" [data-k=applied]", strconv.FormatUint(s.Applied, 10))
		p.waitText(row+" [data-k=lag]", "0")
	}
	p.waitJS(5*time.Second, `document.querySelector('tr[data-row="orders.v1"]').dataset.active === "true"`)
	p.screenshot("projections")

	p.click(`button[data-action=promote][data-target="orders.v2"]`)
	p.waitText("[data-k=action-result]", "projection orders: v2 is active (was v1)")
	if v := activeVersion(t, f.ops); v != 2 {
		t.Fatalf("after promote in the console: active v%d, want v2", v)
	}
	p.waitJS(5*time.Second, `document.querySelector('tr[data-row="orders.v2"]').dataset.active === "true"`)
	p.click(`button[data-action=rollback][data-target="orders.v2"]`)
	p.waitText("[data-k=action-result]", "projection orders: v1 is active (was v2)")
	if v := activeVersion(t, f.ops); v != 1 {
		t.Fatalf("after rollback in the console: active v%d, want v1", v)
	}
	p.waitJS(5*time.Second, `document.querySelector('tr[data-row="orders.v1"]').dataset.active === "true"`)
}

func checkLinks(t *testing.T, p *page, f *meshFixture) {
	m, err := f.ops.Mesh()
	if err != nil {
		t.Fatal(err)
	}
	l, e := m.Links[0], m.Exports[0]
	p.open("links")
	row := `tr[data-row="payments-from-billing"]`
	p.waitText(row+" [data-k=imported]", strconv.FormatUint(l.Imported, 10))
	p.waitText(row+" [data-k=origin-seq]", strconv.FormatUint(l.OriginSeq, 10))
	p.waitText(row+" [data-k=dead]", "1")
	exp := `tr[data-row="public-orders.billing"]`
	p.waitText(exp+" [data-k=read-seq]", strconv.FormatUint(e.ReadSeq, 10))
	p.waitText(exp+" [data-k=unread]", "0")
	p.click(row + " button[data-action=dead-letters]")
	p.waitContains("#dead-letters", "payment/p-3 PaymentReceived")
	p.screenshot("links")
}

func checkMesh(t *testing.T, p *page) {
	p.open("mesh")
	p.waitJS(10*time.Second, `document.querySelector('g.edge[data-kind=link][data-from=billing][data-to=shop]') !== null && `+
		`document.querySelector('g.edge[data-kind=export][data-from=shop][data-to=billing]') !== null`)
	p.waitJS(5*time.Second, `document.querySelector('g.edge[data-kind=link][data-from=billing]').dataset.lag === "0"`)
	p.waitContains(`g.node[data-node=billing]`, "billing")
	p.screenshot("mesh")
}

func checkEvents(t *testing.T, p *page, f *meshFixture) {
	evs, err := f.ops.ReadAll("order", "")
	if err != nil {
		t.Fatal(err)
	}
	p.open("events/order")
	p.waitJS(10*time.Second, fmt.Sprintf(`document.querySelectorAll("#events-list details").length === %d`, len(evs)))
	p.waitText("#events-list details:first-child .seq", fmt.Sprintf("#%d", evs[0].Seq))
	p.click("#events-list details:first-child summary")
	p.waitContains("#events-list details:first-child [data-k=data]", `"customer": "ada"`)
	p.click("#ev-follow")
	seq := appendEvent(t, f.ops, "order", "o-5", "OrderPlaced", `{"customer":"eve","total":99}`)
	p.waitContains(fmt.Sprintf(`#events-list details[data-seq="%d"]`, seq), "o-5")
	p.screenshot("events")
}

func checkQuery(t *testing.T, p *page, f *meshFixture) {
	want, err := f.ops.Query("orders", projection.Query{List: &projection.Filter{Index: "by_status", Eq: json.RawMessage(`"placed"`)}})
	if err != nil {
		t.Fatal(err)
	}
	p.open("query")
	p.set("#q-op", "list")
	p.set("#q-index", "by_status")
	p.set("#q-eq", `"placed"`)
	p.click("#q-run")
	p.waitText("[data-k=as-of]", strconv.FormatUint(want.Seq, 10))
	p.waitJS(5*time.Second, fmt.Sprintf(`document.querySelectorAll("#q-result tr[data-row]").length === %d`, len(want.Docs)))
	for _, d := range want.Docs {
		p.waitContains(fmt.Sprintf(`#q-result tr[data-row=%q]`, d.Key), d.Key)
	}
	p.screenshot("query")
	p.set("#q-op", "get")
	p.set("#q-target", "orders:2")
	p.set("#q-key", "o-1")
	p.click("#q-run")
	p.waitContains("[data-k=doc]", `"item_count": 1`)
}

// checkRefused signs in as viewer (query and read grants only): the admin
// figures read "not allowed" and a promote is refused at once.
func checkRefused(t *testing.T, p *page, f *meshFixture) {
	p.click("#logout")
	p.waitJS(10*time.Second, `document.getElementById("login-user") !== null`)
	signIn(p, "viewer")
	p.waitText("[data-card=projections] [data-k=not-allowed]", "not allowed: dm.admin.projections")
	p.waitText("[data-card=log] [data-k=not-allowed]", "not allowed: $JS.API.STREAM.INFO.EVENTS")
	p.open("projections")
	start := time.Now()
	p.click(`button[data-action=promote][data-target="orders.v2"]`)
	// the request's timeout is 10 s: the refusal must come well before
	p.waitJS(4*time.Second, `(document.querySelector("[data-k=action-result]").textContent || "").includes("not allowed: dm.admin.projection.promote")`)
	t.Logf("promote as viewer refused in %v", time.Since(start).Round(time.Millisecond))
	if v := activeVersion(t, f.ops); v != 1 {
		t.Fatalf("after a refused promote: active v%d, want v1", v)
	}
	p.screenshot("refused")
	p.open("query")
	p.set("#q-key", "o-2")
	p.click("#q-run")
	p.waitContains("[data-k=doc]", `"bob"`)
	if strings.Contains(p.text("#q-result"), "not allowed") {
		t.Fatalf("viewer's query refused: %s", p.text("#q-result"))
	}
}
