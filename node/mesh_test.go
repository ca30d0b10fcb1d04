package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

const testSecret = "mesh-test-secret"

// meshConfig is a test node named name that shares events with peers.
func meshConfig(t testing.TB, name string, peers ...string) node.Config {
	cfg := testConfig(t.TempDir())
	cfg.Name = name
	cfg.Peers = map[string]node.Peer{}
	for _, p := range peers {
		cfg.Peers[p] = node.Peer{Secret: testSecret}
	}
	return cfg
}

func apply(t testing.TB, c *client.Client, yaml string) *protocol.ApplyReply {
	t.Helper()
	r, err := c.Apply([]byte(yaml), false)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, yaml)
	}
	return r
}

func exportYAML(name, to, aggregates, types, redact string) string {
	return fmt.Sprintf("kind: Export\nname: %s\nto: [%s]\naggregates: [%s]\ntypes: [%s]\nredact: [%s]\n", name, to, aggregates, types, redact)
}

func linkYAML(name, peer, url, export, transform string) string {
	s := fmt.Sprintf("kind: Link\nname: %s\npeer: %s\nurl: %s\nexport: %s\n", name, peer, url, export)
	if transform != "" {
		s += "transform:\n" + transform
	}
	return s
}

// waitEvents polls until aggregate has want events in c's node (all ids
// together when id is "").
func waitCategory(t testing.TB, c *client.Client, aggregate string, want int) []protocol.Event {
	t.Helper()
	var evs []protocol.Event
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		var err error
		evs, err = readCategory(c, aggregate)
		if err != nil {
			return err
		}
		if len(evs) < want {
			st, _ := c.Mesh()
			return fmt.Errorf("%d of %d %s events; mesh status %+v", len(evs), want, aggregate, st)
		}
		return nil
	})
	return evs
}

func readCategory(c *client.Client, aggregate string) ([]protocol.Event, error) {
	var all []protocol.Event
	from := uint64(0)
	for {
		r, err := c.Read(aggregate, "", protocol.ReadRequest{FromSeq: from, Limit: 1000})
		if err != nil {
			return nil, err
		}
		all = append(all, r.Events...)
		if r.NextSeq == 0 {
			return all, nil
		}
		from = r.NextSeq
	}
}

// checkExactlyOnce asserts that evs are the imports of origin seqs with
// no repeat, in the owner's order.
func checkExactlyOnce(t testing.TB, evs []protocol.Event, want int) {
	t.Helper()
	if len(evs) != want {
		t.Fatalf("got %d imported events, want %d", len(evs), want)
	}
	var last uint64
	seen := map[uint64]bool{}
	for _, ev := range evs {
		if ev.Origin == nil {
			t.Fatalf("event %d has no origin", ev.Seq)
		}
		if seen[ev.Origin.Seq] {
			t.Fatalf("origin seq %d imported twice", ev.Origin.Seq)
		}
		seen[ev.Origin.Seq] = true
		if ev.Origin.Seq <= last {
			t.Fatalf("origin seq %d after %d: out of the owner's order", ev.Origin.Seq, last)
		}
		last = ev.Origin.Seq
	}
}

// checkOnce asserts that evs are want imports with no origin seq twice
// (replayed dead letters come after later events, so order is not checked).
func checkOnce(t testing.TB, evs []protocol.Event, want int) {
	t.Helper()
	seen := map[uint64]bool{}
	for _, ev := range evs {
		if ev.Origin == nil || seen[ev.Origin.Seq] {
			t.Fatalf("event %d: origin %+v missing or imported twice", ev.Seq, ev.Origin)
		}
		seen[ev.Origin.Seq] = true
	}
	if len(evs) != want {
		t.Fatalf("got %d imported events, want %d", len(evs), want)
	}
}

func placeOrders(t testing.TB, c *client.Client, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		data := fmt.Sprintf(`{"customer":{"name":"c%d","email":"c%d@example.com"},"total":%d,"card_number":"4111"}`, i, i, 10+i)
		if _, err := c.Append("order", fmt.Sprintf("o-%d", i), "OrderPlaced", []byte(data), client.AppendOptions{}); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func TestMeshLinkTransformsAndRedacts(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing"))
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)

	apply(t, oc, exportYAML("public-orders", "billing", "order", "OrderPlaced, OrderShipped", "card_number, customer.email"))
	r := apply(t, bc, linkYAML("orders-to-billing", "orders", orders.LeafURL(), "public-orders", `  filter: "data.total > 10"
  type: "event.type == 'OrderPlaced' ? 'InvoiceRequested' : event.type"
  aggregate: "'invoice'"
  id: "event.id"
  data: "{order: event.id, amount: data.total, customer: data.customer}"
`))
	if r.Results[0].Kind != "Link" || r.Results[0].Status != "created" {
		t.Fatalf("apply link: %+v", r.Results)
	}
	placeOrders(t, oc, 0, 20) // o-0 has total 10: filtered out
	if _, err := oc.Append("order", "o-5", "ItemAdded", []byte(`{"item":{"price":1}}`), client.AppendOptions{}); err != nil {
		t.Fatal(err) // not exported: ItemAdded is not in the export's types
	}
	evs := waitCategory(t, bc, "invoice", 19)
	checkExactlyOnce(t, evs, 19)
	for _, ev := range evs {
		if ev.Type != "InvoiceRequested" || ev.Origin.Node != "orders" || ev.Origin.Link != "orders-to-billing" {
			t.Fatalf("imported event: %+v", ev)
		}
		var d map[string]any
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		cust := d["customer"].(map[string]any)
		if _, leaked := cust["email"]; leaked {
			t.Fatalf("customer.email was not redacted: %s", ev.Data)
		}
		if _, ok := d["card_number"]; ok {
			t.Fatalf("card_number crossed: %s", ev.Data)
		}
		if d["order"] != ev.AggregateID || cust["name"] == nil {
			t.Fatalf("transformed data: %s", ev.Data)
		}
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		st, err := bc.Mesh()
		if err != nil {
			return err
		}
		if len(st.Links) != 1 {
			return fmt.Errorf("links: %+v", st.Links)
		}
		l := st.Links[0]
		if !l.Connected || l.State != protocol.LinkImporting || l.LagEvents != 0 || l.Imported != 19 || l.Filtered != 1 {
			return fmt.Errorf("link status: %+v", l)
		}
		return nil
	})
	st, err := oc.Mesh()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Exports) != 1 || st.Exports[0].Peer != "billing" || !st.Exports[0].Connected || st.Exports[0].StreamSeq != 20 {
		t.Fatalf("export status: %+v", st.Exports)
	}
	// Discovery lists exports and links; the mesh catalog shows what the
	// owner's exports grant, nothing else.
	cat, err := bc.CatalogMesh()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Links) != 1 || len(cat.Mesh) != 1 || cat.Mesh[0].Node != "orders" || cat.Mesh[0].Error != "" ||
		len(cat.Mesh[0].Exports) != 1 || cat.Mesh[0].Exports[0].Name != "public-orders" {
		t.Fatalf("mesh catalog: %+v", cat.Mesh)
	}
	if !strings.Contains(cat.Mesh[0].Exports[0].Stream, "public-orders") {
		t.Fatalf("export stream: %+v", cat.Mesh[0].Exports[0])
	}
}

func TestMeshPeerSeesOnlyItsExports(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing", "shipping"))
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)
	apply(t, oc, exportYAML("public-orders", "billing", "order", "OrderPlaced", "card_number")+"---\n"+
		exportYAML("shipping-only", "shipping", "order", "OrderPlaced", ""))
	apply(t, bc, linkYAML("orders-in", "orders", orders.LeafURL(), "public-orders", ""))
	placeOrders(t, oc, 0, 5)
	waitCategory(t, bc, "order", 5)

	checkPeerReachesOnlyItsExport(t, billing)
	if evs := readAll(t, oc, "order", "o-1"); len(evs) != 1 {
		t.Fatalf("owner's o-1 has %d events, want 1", len(evs))
	}
	// Each node answers its own API: discovery on billing is billing's.
	if cat, err := bc.Catalog(); err != nil || cat.Node != "billing" {
		t.Fatalf("billing's discovery: %+v, %v", cat, err)
	}
	// A link to an export not granted to billing says why in its status.
	apply(t, bc, linkYAML("sneaky", "orders", orders.LeafURL(), "shipping-only", ""))
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		s, err := bc.Mesh()
		if err != nil {
			return err
		}
		for _, l := range s.Links {
			if l.Name == "sneaky" && strings.Contains(l.LastError, "no export") {
				return nil
			}
		}
		return fmt.Errorf("links: %+v", s.Links)
	})
	checkLeafRefusesStranger(t, orders)
}

// checkPeerReachesOnlyItsExport checks, through billing's connection to
// its peer orders, that billing can read its export of five events and
// nothing else of the owner's: no other stream, no writes to the export,
// no API.
func checkPeerReachesOnlyItsExport(t testing.TB, billing *node.Node) {
	t.Helper()
	pc, err := billing.PeerConn("orders")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	js, err := jetstream.NewWithDomain(pc, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Its own export is readable...
	st, err := js.Stream(ctx, "EXPORT_public-orders")
	if err != nil {
		t.Fatalf("billing cannot read its export: %v", err)
	}
	// ...the owner's log and other peers' exports do not exist for it.
	for _, name := range []string{"EVENTS", "EXPORT_shipping-only", "KV_datamesh_registry"} {
		if _, err := js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("stream %s from billing: got %v, want not found", name, err)
		}
	}
	// It cannot write into its export, nor delete or purge it.
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	if _, err := js.Publish(short, "export.public-orders.order.o-99.OrderPlaced", []byte(`{}`)); err == nil {
		t.Fatal("billing published into its export stream")
	}
	cancelShort()
	short, cancelShort = context.WithTimeout(ctx, 500*time.Millisecond)
	if err := js.DeleteStream(short, "EXPORT_public-orders"); err == nil {
		t.Fatal("billing deleted its export stream")
	}
	cancelShort()
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 5 {
		t.Fatalf("export stream after the attempts: %+v, %v", info, err)
	}
	// The owner's API does not answer across the link: no query, no admin,
	// no append, no raw JetStream API of the owner's account.
	for _, subject := range []string{"dm.query.orders", "dm.admin.apply", "dm.append.order.o-1", "dm.discovery", "$JS.API.STREAM.INFO.EVENTS"} {
		if _, err := pc.Request(subject, []byte(`{}`), 500*time.Millisecond); err == nil {
			t.Fatalf("%s answered across the link", subject)
		}
	}
}

// checkLeafRefusesStranger checks that a leafnode that does not sign in as
// a configured peer is refused by n's leaf port.
func checkLeafRefusesStranger(t testing.TB, n *node.Node) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.LeafURL(), "nats-leaf://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("leaf port greeting %q: %v", line, err)
	}
	fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"intruder\"}\r\nPING\r\n")
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "Authorization Violation") {
		t.Fatalf("anonymous leafnode: got %q, %v; want an authorization violation", line, err)
	}
}

// TestMeshTopologies runs a cycle of three nodes (a→b→c→a), a chain of
// transforms along it, and two links between the same pair (b imports two
// exports of a). Leafnode loop detection must not close any link, and no
// stream may capture another node's subjects: every count is exact.
func TestMeshTopologies(t *testing.T) {
	a := startNode(t, meshConfig(t, "a", "b", "c"))
	b := startNode(t, meshConfig(t, "b", "a", "c"))
	c := startNode(t, meshConfig(t, "c", "a", "b"))
	ac, bc, cc := newClient(t, a), newClient(t, b), newClient(t, c)

	apply(t, ac, exportYAML("orders", "b", "order", "", "")+"---\n"+exportYAML("orders-audit", "b", "order", "OrderPlaced", "customer"))
	apply(t, bc, linkYAML("from-a", "a", a.LeafURL(), "orders", `  aggregate: "'invoice'"
  type: "'InvoiceRequested'"
  data: "{order: event.id, amount: data.total}"
`)+"---\n"+linkYAML("audit-from-a", "a", a.LeafURL(), "orders-audit", `  aggregate: "'audit'"
`)+"---\n"+exportYAML("invoices", "c", "invoice", "", ""))
	apply(t, cc, linkYAML("from-b", "b", b.LeafURL(), "invoices", `  aggregate: "'shipment'"
  type: "'ShipmentRequested'"
  data: "merge(data, {via: event.source})"
`)+"---\n"+exportYAML("shipments", "a", "shipment", "", ""))
	apply(t, ac, linkYAML("from-c", "c", c.LeafURL(), "shipments", `  aggregate: "'delivery'"
`))
	const n = 50
	placeOrders(t, ac, 0, n)

	checkExactlyOnce(t, waitCategory(t, bc, "invoice", n), n)
	checkExactlyOnce(t, waitCategory(t, bc, "audit", n), n)
	shipments := waitCategory(t, cc, "shipment", n)
	checkExactlyOnce(t, shipments, n)
	deliveries := waitCategory(t, ac, "delivery", n)
	checkExactlyOnce(t, deliveries, n)

	// The chain: a's order became b's invoice became c's shipment, and the
	// shipment came back to a with the path it took.
	if p := shipments[0].Origin.Path; p != "a,b" {
		t.Fatalf("shipment path %q, want a,b", p)
	}
	if p := deliveries[0].Origin.Path; p != "a,b,c" {
		t.Fatalf("delivery path %q, want a,b,c", p)
	}
	var d map[string]any
	if err := json.Unmarshal(shipments[0].Data, &d); err != nil || d["order"] != "o-0" || d["amount"] != 10.0 {
		t.Fatalf("shipment data %s: %v", shipments[0].Data, err)
	}
	// Audit events had their customer redacted by a.
	audits, _ := readCategory(bc, "audit")
	if strings.Contains(string(audits[0].Data), "customer") {
		t.Fatalf("audit carries the redacted customer: %s", audits[0].Data)
	}
	// Exact counts everywhere: nothing captured across domains.
	for _, tc := range []struct {
		c         *client.Client
		aggregate string
		want      int
	}{{ac, "order", n}, {bc, "order", 0}, {cc, "order", 0}, {cc, "invoice", 0}, {ac, "invoice", 0}, {ac, "shipment", 0}, {bc, "delivery", 0}} {
		evs, err := readCategory(tc.c, tc.aggregate)
		if err != nil || len(evs) != tc.want {
			t.Fatalf("%s events: %d (%v), want %d", tc.aggregate, len(evs), err, tc.want)
		}
	}
	// a reloaded its server to link to c after it began serving b: its
	// catalog for b still answers, with both exports granted to b.
	cat, err := bc.CatalogMesh()
	if err != nil || len(cat.Mesh) != 1 || cat.Mesh[0].Error != "" || len(cat.Mesh[0].Exports) != 2 {
		t.Fatalf("b's mesh catalog: %+v, %v", cat, err)
	}
	// Every node keeps both of its leafnode connections (one in, one out).
	for _, nd := range []*node.Node{a, b, c} {
		if got := nd.Server().NumLeafNodes(); got != 2 {
			t.Fatalf("node %s has %d leafnode connections, want 2", nd.Name(), got)
		}
	}
}

// proxy is a TCP proxy the test can cut and restore, to break a link.
type proxy struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection through it.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same address.
func (p *proxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen again: %v", err)
	}
	p.serve(ln)
}

func linkStatus(t testing.TB, c *client.Client, name string) protocol.LinkStatus {
	t.Helper()
	st, err := c.Mesh()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Links {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no link %s in %+v", name, st.Links)
	return protocol.LinkStatus{}
}

// TestMeshLinkSurvivesCuts cuts the link with a proxy while the owner keeps
// appending, then restores it: every event arrives once, in order.
func TestMeshLinkSurvivesCuts(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing"))
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)
	p := newProxy(t, strings.TrimPrefix(orders.LeafURL(), "nats-leaf://"))
	apply(t, oc, exportYAML("all-orders", "billing", "order", "", ""))
	apply(t, bc, linkYAML("orders-in", "orders", "nats-leaf://"+p.addr, "all-orders", ""))

	placeOrders(t, oc, 0, 100)
	waitCategory(t, bc, "order", 100)
	for round := 1; round <= 2; round++ {
		p.cut()
		checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if l := linkStatus(t, bc, "orders-in"); l.Connected {
				return errors.New("link still connected")
			}
			return nil
		})
		placeOrders(t, oc, 100*round, 100)
		p.restore()
		checkExactlyOnce(t, waitCategory(t, bc, "order", 100*(round+1)), 100*(round+1))
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if l := linkStatus(t, bc, "orders-in"); !l.Connected || l.LagEvents != 0 || l.OriginSeq != 300 || l.OwnerHeadSeq != 300 {
			return fmt.Errorf("link status: %+v", l)
		}
		return nil
	})
}

// freeLeafListen returns a loopback address with a port free now, so a
// restarted node listens where its peers expect it.
func freeLeafListen(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestMeshRestarts restarts the owner, then the recipient, while a link
// imports: nothing is lost or imported twice.
func TestMeshRestarts(t *testing.T) {
	ocfg := meshConfig(t, "orders", "billing")
	ocfg.LeafListen = freeLeafListen(t)
	bcfg := meshConfig(t, "billing", "orders")
	orders := startNode(t, ocfg)
	billing := startNode(t, bcfg)
	oc, bc := newClient(t, orders), newClient(t, billing)
	apply(t, oc, exportYAML("all-orders", "billing", "order", "", ""))
	apply(t, bc, linkYAML("orders-in", "orders", orders.LeafURL(), "all-orders", `  data: "merge(data, {imported: true})"
`))
	placeOrders(t, oc, 0, 1000)
	// The owner stops while the link imports, and comes back.
	checkFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if l := linkStatus(t, bc, "orders-in"); l.Imported == 0 {
			return errors.New("nothing imported yet")
		}
		return nil
	})
	if err := orders.Close(); err != nil {
		t.Fatal(err)
	}
	orders = startNode(t, ocfg)
	oc = newClient(t, orders)
	placeOrders(t, oc, 1000, 500)
	// The recipient stops while it imports, and comes back.
	checkFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if l := linkStatus(t, bc, "orders-in"); l.OriginSeq <= 1000 {
			return fmt.Errorf("at origin seq %d", l.OriginSeq)
		}
		return nil
	})
	if err := billing.Close(); err != nil {
		t.Fatal(err)
	}
	placeOrders(t, oc, 1500, 500)
	billing = startNode(t, bcfg)
	bc = newClient(t, billing)
	checkExactlyOnce(t, waitCategory(t, bc, "order", 2000), 2000)
}

// TestMeshNativeTransformer: a transformer written in Go replaces a link's
// expressions.
func TestMeshNativeTransformer(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing"))
	oc := newClient(t, orders)
	billing, err := node.New(meshConfig(t, "billing", "orders"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := billing.RegisterTransformer("native-in", meshlink.TransformFunc(func(in meshlink.Event) (meshlink.Event, bool, error) {
		total := in.Data.(map[string]any)["total"].(float64)
		in.Aggregate, in.Type = "invoice", "InvoiceRequested"
		in.Data = map[string]any{"amount": total * 2, "from": in.Node}
		return in, total >= 15, nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := billing.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { billing.Close() })
	bc := newClient(t, billing)
	apply(t, oc, exportYAML("all", "billing", "order", "", ""))
	apply(t, bc, linkYAML("native-in", "orders", orders.LeafURL(), "all", ""))
	placeOrders(t, oc, 0, 10) // totals 10..19: five pass
	evs := waitCategory(t, bc, "invoice", 5)
	checkExactlyOnce(t, evs, 5)
	if string(evs[0].Data) != `{"amount":30,"from":"orders"}` {
		t.Fatalf("native transform gave %s", evs[0].Data)
	}
}

// A link's dead letters can be listed; deleting a link stops it and keeps
// its checkpoint (applied again, it resumes without importing twice);
// revoking a peer from an export, or deleting the export, deletes the
// peer's copy.
func TestMeshDeleteAndDeadLetters(t *testing.T) {
	orders := startNode(t, meshConfig(t, "orders", "billing", "shipping"))
	billing := startNode(t, meshConfig(t, "billing", "orders"))
	oc, bc := newClient(t, orders), newClient(t, billing)

	apply(t, oc, exportYAML("public-orders", "billing, shipping", "order", "OrderPlaced", "card_number"))
	apply(t, bc, `kind: EventType
name: InvoiceRequested
aggregate: invoice
version: 1
schema:
  type: object
  required: [amount]
  properties:
    amount: {type: number, minimum: 15}
`)
	link := linkYAML("orders-to-billing", "orders", orders.LeafURL(), "public-orders", `  type: "'InvoiceRequested'"
  aggregate: "'invoice'"
  data: "{amount: data.total}"
`)
	apply(t, bc, link)
	placeOrders(t, oc, 0, 10) // totals 10..19: the first five break billing's contract
	waitCategory(t, bc, "invoice", 5)
	checkDeadLetters(t, billing, bc)
	replayDeadLettersAfterFix(t, bc)
	deleteAndReapplyLink(t, oc, bc, link)
	revokeAndDeleteExport(t, oc, bc, billing)
}

// checkDeadLetters waits for the five orders that broke billing's contract
// to be dead letters of orders-to-billing, and checks them, an unknown
// link, and paging.
func checkDeadLetters(t testing.TB, billing *node.Node, bc *client.Client) {
	t.Helper()
	var dls []protocol.DeadLetter
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var err error
		if dls, err = bc.DeadLetters("orders-to-billing"); err != nil {
			return err
		}
		if len(dls) != 5 {
			return fmt.Errorf("%d dead letters, want 5", len(dls))
		}
		return nil
	})
	for i, dl := range dls {
		// A dead letter keeps the event as the owner exported it.
		if dl.ExportSeq != uint64(i+1) || dl.Type != "OrderPlaced" || dl.ID != fmt.Sprintf("o-%d", i) || !strings.Contains(dl.Error, "minimum") {
			t.Fatalf("dead letter %d: %+v", i, dl)
		}
		// The error reads as the API's error reply would.
		if !strings.HasPrefix(dl.Error, protocol.CodeSchemaViolation+": ") {
			t.Fatalf("dead letter %d: error %q, want it to start with %s: ", i, dl.Error, protocol.CodeSchemaViolation)
		}
	}
	_, err := bc.DeadLetters("no-such-link")
	wantAPIError(t, err, protocol.CodeNotFound)
	page, err := dial(t, billing).Request(protocol.SubjectDeadLetters, []byte(`{"name":"orders-to-billing","after":1,"limit":2}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var p protocol.DeadLettersReply
	if err := json.Unmarshal(page.Data, &p); err != nil || len(p.DeadLetters) != 2 || p.DeadLetters[0].ExportSeq != 2 || p.Next != 3 {
		t.Fatalf("a page of dead letters: %s (%v)", page.Data, err)
	}
}

// replayDeadLettersAfterFix replays orders-to-billing's dead letters before
// and after billing relaxes its contract to a minimum of 12.
func replayDeadLettersAfterFix(t testing.TB, bc *client.Client) {
	t.Helper()
	// Replayed before a fix, a dead letter fails again; after billing
	// relaxes its contract, those that now pass are appended once. (Until
	// the link has checkpointed the batch, a replay says to try again: the
	// events are in the log, and the dead letters stored, a moment before.)
	var r *protocol.ReplayReply
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		var err error
		if r, err = bc.Replay("orders-to-billing", 1); err != nil {
			return err
		}
		if len(r.Failed) == 1 && strings.Contains(r.Failed[0].Error, "not checkpointed") {
			return fmt.Errorf("not checkpointed yet: %+v", r)
		}
		return nil
	})
	if len(r.Failed) != 1 || len(r.Replayed) != 0 || !strings.Contains(r.Failed[0].Error, "minimum") {
		t.Fatalf("replay before the fix: %+v", r)
	}
	_, err := bc.Replay("orders-to-billing", 99)
	wantAPIError(t, err, protocol.CodeNotFound)
	if _, err := bc.Apply([]byte(`kind: EventType
name: InvoiceRequested
aggregate: invoice
version: 2
schema:
  type: object
  required: [amount]
  properties:
    amount: {type: number, minimum: 12}
`), true); err != nil {
		t.Fatal(err)
	}
	if r, err = bc.Replay("orders-to-billing"); err != nil || fmt.Sprint(r.Replayed) != "[3 4 5]" || len(r.Failed) != 2 {
		t.Fatalf("replay after the fix: %+v, %v", r, err)
	}
	if r, err = bc.Replay("orders-to-billing"); err != nil || len(r.Replayed) != 0 || len(r.Failed) != 2 {
		t.Fatalf("second replay: %+v, %v", r, err)
	}
	checkOnce(t, waitCategory(t, bc, "invoice", 8), 8)
	if dls, err := bc.DeadLetters("orders-to-billing"); err != nil || len(dls) != 2 {
		t.Fatalf("dead letters after replay: %+v, %v", dls, err)
	}
	if st, err := bc.Mesh(); err != nil || len(st.Links) != 1 || st.Links[0].DeadLetters != 2 {
		t.Fatalf("status after replay: %+v, %v", st, err)
	}
}

// deleteAndReapplyLink deletes the link, checks that it stops and its
// leafnode goes, then applies it again and checks it resumes from its
// checkpoint.
func deleteAndReapplyLink(t testing.TB, oc, bc *client.Client, link string) {
	t.Helper()
	// Delete the link: it stops, its leafnode goes, a second delete is a 404.
	if r, err := bc.Delete("link", "orders-to-billing"); err != nil || r.Kind != "Link" || r.Status != "deleted" {
		t.Fatalf("delete link: %+v, %v", r, err)
	}
	_, err := bc.Delete("Link", "orders-to-billing")
	wantAPIError(t, err, protocol.CodeNotFound)
	if st, err := bc.Mesh(); err != nil || len(st.Links) != 0 {
		t.Fatalf("links after delete: %+v, %v", st, err)
	}
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		st, err := oc.Mesh()
		if err != nil {
			return err
		}
		for _, e := range st.Exports {
			if e.Peer == "billing" && e.Connected {
				return errors.New("billing's leafnode is still connected")
			}
		}
		return nil
	})
	// Applied again, the link resumes from its checkpoint.
	placeOrders(t, oc, 10, 3) // totals 20..22
	apply(t, bc, link)
	checkOnce(t, waitCategory(t, bc, "invoice", 11), 11)
}

// revokeAndDeleteExport revokes billing from public-orders and checks that
// billing's copy goes, then deletes the export.
func revokeAndDeleteExport(t testing.TB, oc, bc *client.Client, billing *node.Node) {
	t.Helper()
	// Revoking billing deletes its copy: its link loses the export.
	apply(t, oc, exportYAML("public-orders", "shipping", "order", "OrderPlaced", "card_number"))
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		st, err := bc.Mesh()
		if err != nil {
			return err
		}
		if len(st.Links) != 1 || st.Links[0].LastError == "" || st.Links[0].State == protocol.LinkImporting {
			return fmt.Errorf("link after revocation: %+v", st.Links)
		}
		return nil
	})
	pc, err := billing.PeerConn("orders")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pjs, err := jetstream.NewWithDomain(pc, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pjs.Stream(ctx, "EXPORT_public-orders"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("billing's copy after revocation: %v, want stream not found", err)
	}
	if r, err := oc.Delete("export", "public-orders"); err != nil || r.Kind != "Export" {
		t.Fatalf("delete export: %+v, %v", r, err)
	}
	if st, err := oc.Mesh(); err != nil || len(st.Exports) != 0 {
		t.Fatalf("exports after delete: %+v, %v", st, err)
	}
	_, err = oc.Delete("projection", "orders")
	wantAPIError(t, err, protocol.CodeBadRequest)
}
