package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/projection"
)

// invoiceContract and invoiceTransform turn the supplier's orders into
// invoices on the shop; totals under 15 break the contract and become dead
// letters.
const invoiceContract = `kind: EventType
name: InvoiceRequested
aggregate: invoice
version: 1
schema:
  type: object
  required: [amount]
  properties:
    amount: {type: number, minimum: 15}
`

const invoiceTransform = `  type: "'InvoiceRequested'"
  aggregate: "'invoice'"
  data: "{amount: data.total}"
`

// standalone is what the standalone shop held when it was backed up.
type standalone struct {
	log      []*jetstream.RawStreamMsg
	registry map[string]string
	links    map[string]string
	docs     []projection.Doc
	dead     []protocol.DeadLetter
	backup   *protocol.BackupEnd
	file     string
}

// TestClusterMigrateStandalone moves a standalone node into a new
// three-server cluster with `datamesh backup` and dm.admin.restore: a shop
// with events, the orders projection, an export its supplier links, and a
// link from that supplier with a checkpoint and dead letters. Starting
// clustered on the standalone directory is refused with the safe path; the
// cluster then holds the same log (events, seqs, headers, times), registry,
// link checkpoints and dead letters and export stream; every server's
// projection equals the standalone one; the shop's link and the
// supplier's link resume after their checkpoints, nothing twice.
func TestClusterMigrateStandalone(t *testing.T) {
	supplier := startNode(t, meshConfig(t, "supplier", "shop"))
	shopCfg := meshConfig(t, "shop", "supplier")
	shop := startNode(t, shopCfg)
	sc, pc := newClient(t, shop), newClient(t, supplier)
	before := setUpShop(t, shop, supplier, sc, pc)
	shop.Close()

	refused := shopCfg
	refused.ServerName, refused.Cluster = "s0", &node.Cluster{Listen: freeLeafListen(t), Routes: []string{"nats-route://127.0.0.1:1"}}
	n, err := node.New(refused, testLogger(t))
	if err == nil {
		err = n.Start(context.Background())
		n.Close()
	}
	if !errors.Is(err, node.ErrStandaloneData) || !strings.Contains(err.Error(), "datamesh restore --in FILE --server") {
		t.Fatalf("clustered start on the standalone data: %v, want a refusal naming datamesh restore --server", err)
	}

	cfgs := clusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].Peers = shopCfg.Peers
	}
	servers := startServers(t, cfgs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	end, err := backup.Send(ctx, dial(t, servers[1]), before.file, backup.SendOptions{SHA256: before.backup.SHA256})
	if err != nil {
		t.Fatalf("restore into the cluster: %v", err)
	}
	t.Logf("restored %d bytes through server %s in %v", end.Size, end.Server, time.Since(start).Round(time.Millisecond))
	checkRestoreEnd(t, end, before)
	cc := newClient(t, servers[0])
	checkSameLog(t, servers, before.log)
	checkSameBuckets(t, servers[2], before)
	head := before.log[len(before.log)-1].Sequence
	for i, s := range servers {
		waitProjection(t, s, fmt.Sprintf("s%d", i), head)
	}
	if docs := allDocs(t, cc, head); !reflect.DeepEqual(docs, before.docs) {
		t.Fatalf("cluster's orders: %d documents, want the standalone's %d", len(docs), len(before.docs))
	}

	// The shop's link resumes after its checkpoint: the supplier's next
	// orders arrive once each; the dead letters are the standalone's.
	placeOrders(t, pc, 10, 10) // totals 20..29: all pass
	checkOnce(t, waitCategory(t, cc, "invoice", 15), 15)
	if dead, err := cc.DeadLetters("from-supplier"); err != nil || !reflect.DeepEqual(dead, before.dead) {
		t.Fatalf("dead letters in the cluster: %v %+v, want %+v", err, dead, before.dead)
	}
	// The supplier's link resumes after its checkpoint, which counts the
	// restored export stream's seqs: the shop's next orders arrive once.
	apply(t, pc, linkYAML("from-shop", "shop", servers[0].LeafURL(), "public-orders", `  aggregate: "'shop_order'"`+"\n"))
	for i := 7; i <= 9; i++ {
		placeOrder(t, cc, fmt.Sprintf("o-%d", i), "grace", float64(i))
	}
	checkExactlyOnce(t, waitCategory(t, pc, "shop_order", 9), 9)
	checkServersAgree(t, servers, cfgs, cc, before.registry["projection.orders.v1"], before.docs, 3)
}

// setUpShop gives the shop its events, projection, export and link, waits
// for both links to have checkpoints, and backs the shop up.
func setUpShop(t *testing.T, shop, supplier *node.Node, sc, pc *client.Client) standalone {
	t.Helper()
	applyOrders(t, sc)
	apply(t, sc, exportYAML("public-orders", "supplier", "order", "OrderPlaced", ""))
	apply(t, pc, linkYAML("from-shop", "shop", shop.LeafURL(), "public-orders", `  aggregate: "'shop_order'"`+"\n"))
	apply(t, pc, exportYAML("supplies", "shop", "order", "OrderPlaced", "card_number"))
	apply(t, sc, invoiceContract)
	apply(t, sc, linkYAML("from-supplier", "supplier", supplier.LeafURL(), "supplies", invoiceTransform))
	for i := 1; i <= 6; i++ {
		placeOrder(t, sc, fmt.Sprintf("o-%d", i), fmt.Sprintf("c-%d", i%3), float64(10*i))
	}
	appendEvent(t, sc, "o-1", "ItemAdded", `{"sku":"s-1","price":5}`)
	appendEvent(t, sc, "o-2", "OrderShipped", `{"carrier":"ups"}`)
	appendEvent(t, sc, "o-3", "OrderCancelled", `{}`)
	placeOrders(t, pc, 0, 10) // totals 10..19: five invoices, five dead letters
	waitCategory(t, sc, "invoice", 5)
	waitCategory(t, pc, "shop_order", 6)
	// A quiet link's checkpoint may lag its last batch (it is written at
	// most every 250 ms): the restored link then finds the events it
	// appended after it in the log (meshlink's recovery).
	waitCheckpoint(t, shop, "from-supplier")
	waitCheckpoint(t, supplier, "from-shop")

	var s standalone
	s.file, s.backup = takeBackup(t, sc, func() {})
	nc := dial(t, shop)
	s.log = rawLog(t, nc)
	if last := streamOf(t, s.backup, "$G", "EVENTS").LastSeq; last != uint64(len(s.log)) {
		t.Fatalf("backup's log at seq %d, the shop's at %d", last, len(s.log))
	}
	s.registry, s.links = bucketValues(t, nc, registry.Bucket), bucketValues(t, nc, registry.LinksBucket)
	s.docs = allDocs(t, sc, uint64(len(s.log)))
	var err error
	if s.dead, err = sc.DeadLetters("from-supplier"); err != nil || len(s.dead) != 5 {
		t.Fatalf("standalone dead letters: %v %+v", err, s.dead)
	}
	return s
}

// waitCheckpoint waits until link has a checkpoint on n.
func waitCheckpoint(t *testing.T, n *node.Node, link string) {
	t.Helper()
	nc := dial(t, n)
	checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		var cp struct {
			ExportSeq uint64 `json:"export_seq"`
		}
		v := bucketValues(t, nc, registry.LinksBucket)["checkpoint."+link]
		if err := json.Unmarshal([]byte(v), &cp); err != nil || cp.ExportSeq == 0 {
			return fmt.Errorf("checkpoint of %s: %q", link, v)
		}
		return nil
	})
}

// rawLog reads every message of the log as stored: subject, headers,
// data, seq and time.
func rawLog(t *testing.T, nc *nats.Conn) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("log seq %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// bucketValues reads every live key of bucket with its value.
func bucketValues(t testing.TB, nc *nats.Conn, bucket string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	out := map[string]string{}
	for e := range w.Updates() {
		if e == nil {
			return out
		}
		out[e.Key()] = string(e.Value())
	}
	t.Fatalf("watch of %s ended early", bucket)
	return nil
}

func checkRestoreEnd(t *testing.T, end *protocol.RestoreEnd, before standalone) {
	t.Helper()
	want := map[string]protocol.BackupStream{}
	for _, s := range before.backup.Streams {
		want[s.Account+"/"+s.Stream] = s
	}
	if end.Node != "shop" || end.Replicas != 3 || end.SHA256 != before.backup.SHA256 || len(end.Streams) != 2 {
		t.Fatalf("restore end %+v, want node shop, 3 replicas, the export stream and the log", end)
	}
	for _, s := range end.Streams {
		if w := want[s.Account+"/"+s.Stream]; s != w || s.Messages == 0 {
			t.Fatalf("restored %+v, backup %+v", s, w)
		}
	}
	if end.Streams[0].Stream != "EXPORT_public-orders" || end.Streams[1].Stream != "EVENTS" {
		t.Fatalf("restored streams %+v: want the export stream, then the log", end.Streams)
	}
	keys := map[string]int{registry.LinksBucket: len(before.links), registry.Bucket: len(before.registry)}
	for _, b := range end.Buckets {
		if b.Keys != keys[b.Bucket] || b.Keys == 0 {
			t.Fatalf("bucket %s: %d keys written, the standalone held %d", b.Bucket, b.Keys, keys[b.Bucket])
		}
	}
}

// checkSameLog reads the log through each server: the same messages at
// the same seqs, with the same headers, data and times; the stream has
// three current replicas.
func checkSameLog(t *testing.T, servers []*node.Node, want []*jetstream.RawStreamMsg) {
	t.Helper()
	for i, s := range servers {
		got := rawLog(t, dial(t, s))
		if len(got) != len(want) {
			t.Fatalf("server s%d: log of %d events, want %d", i, len(got), len(want))
		}
		for j := range want {
			a, b := got[j], want[j]
			if a.Sequence != b.Sequence || a.Subject != b.Subject || !bytes.Equal(a.Data, b.Data) ||
				!reflect.DeepEqual(a.Header, b.Header) || !a.Time.Equal(b.Time) {
				t.Fatalf("server s%d: seq %d is %s %v %s at %v, want %s %v %s at %v", i, b.Sequence,
					a.Subject, a.Header, a.Data, a.Time, b.Subject, b.Header, b.Data, b.Time)
			}
		}
	}
	js, err := jetstream.New(dial(t, servers[0]))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil || info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("restored log: %v %+v, want three replicas", err, info)
	}
}

// checkSameBuckets compares the cluster's registry and link state with
// the standalone's: the same resources; the same dead letters; each link's
// checkpoint at or past the standalone's (the link runs again).
func checkSameBuckets(t *testing.T, s *node.Node, before standalone) {
	t.Helper()
	nc := dial(t, s)
	if got := bucketValues(t, nc, registry.Bucket); !maps.Equal(got, before.registry) {
		t.Fatalf("registry:\n%v\nwant\n%v", got, before.registry)
	}
	links := bucketValues(t, nc, registry.LinksBucket)
	for k, v := range before.links {
		if strings.HasPrefix(k, "deadletter.") && links[k] != v {
			t.Fatalf("dead letter %s: %q, want %q", k, links[k], v)
		}
		var a, b struct {
			ExportSeq uint64 `json:"export_seq"`
		}
		if strings.HasPrefix(k, "checkpoint.") && (json.Unmarshal([]byte(links[k]), &a) != nil || json.Unmarshal([]byte(v), &b) != nil || a.ExportSeq < b.ExportSeq) {
			t.Fatalf("checkpoint %s: %q, want at or past %q", k, links[k], v)
		}
	}
}

// waitProjection waits until server s runs orders v1, active and live,
// with no lag behind head or a later seq.
func waitProjection(t *testing.T, s *node.Node, name string, head uint64) {
	t.Helper()
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		st := s.ProjectionStatuses(context.Background())
		// Applied is the last seq the projection folded; the log's later
		// events (invoices) are not its: Head and no lag say it has them.
		if len(st) != 1 || st[0].Name != "orders" || st[0].Version != 1 || !st[0].Active || st[0].State != projection.StateLive ||
			st[0].Head < head || st[0].LagEvents > 0 {
			return fmt.Errorf("server %s: %+v", name, st)
		}
		return nil
	})
}

// checkServersAgree closes the cluster and reads each server's own orders
// file: each holds the documents the cluster answers with, the
// standalone's among them as it had them, and the added ones.
func checkServersAgree(t *testing.T, servers []*node.Node, cfgs []node.Config, c *client.Client, specJSON string, standalone []projection.Doc, added int) {
	t.Helper()
	var spec projection.Spec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		t.Fatalf("spec of orders v1: %v", err)
	}
	head := uint64(0)
	for _, s := range servers {
		for _, st := range s.ProjectionStatuses(context.Background()) {
			head = max(head, st.Head)
		}
	}
	want := allDocs(t, c, head)
	for _, s := range servers {
		waitProjection(t, s, "", head)
	}
	for i, s := range servers {
		s.Close()
		st, err := projection.OpenStore(filepath.Join(cfgs[i].DataDir, "projections", "orders", "v1.db"), &spec)
		if err != nil {
			t.Fatalf("server s%d: open orders v1: %v", i, err)
		}
		q := &projection.Query{List: &projection.Filter{Limit: 500}}
		if err := q.Check(&spec); err != nil {
			t.Fatal(err)
		}
		r, err := st.Run(context.Background(), q)
		st.Close()
		if err != nil || !reflect.DeepEqual(r.Docs, want) || len(want) != len(standalone)+added {
			t.Fatalf("server s%d: orders %v, %d documents, want the cluster's %d", i, err, len(r.Docs), len(want))
		}
		// The standalone's documents are there as it had them.
		mine := map[string]string{}
		for _, d := range r.Docs {
			mine[d.Key] = string(d.Doc)
		}
		for _, d := range standalone {
			if mine[d.Key] != string(d.Doc) {
				t.Fatalf("server s%d: order %s is %s, the standalone had %s", i, d.Key, mine[d.Key], d.Doc)
			}
		}
	}
}

// TestClusterRestoreRefusals: dm.admin.restore refuses a standalone node,
// a backup of another node, and a cluster that holds anything (a restore
// marker left by one cut short, a resource, an event), and a refused
// restore leaves no marker behind.
func TestClusterRestoreRefusals(t *testing.T) {
	shopCfg := testConfig(t.TempDir())
	shopCfg.Name = "shop"
	shop := startNode(t, shopCfg)
	placeOrder(t, newClient(t, shop), "o-1", "ada", 3)
	shopFile, _ := takeBackup(t, newClient(t, shop), func() {})
	other := newNode(t) // named "test"
	otherFile, _ := takeBackup(t, newClient(t, other), func() {})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := backup.Send(ctx, dial(t, shop), shopFile, backup.SendOptions{})
	if e := wantAPIError(t, err, protocol.CodeBadRequest); !strings.Contains(e.Message, "--data DIR") {
		t.Fatalf("restore into a standalone node: %v, want the offline restore named", err)
	}
	servers := startServers(t, clusterConfigs(t, 3))
	nc, c := dial(t, servers[0]), newClient(t, servers[1])
	_, err = backup.Send(ctx, nc, otherFile, backup.SendOptions{})
	if e := wantAPIError(t, err, protocol.CodeBadRequest); !strings.Contains(e.Message, "start the cluster with name test") {
		t.Fatalf("restore of another node's backup: %v", err)
	}
	// The node's own rights write the registry (a client's may not).
	own, err := servers[2].Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	js, err := jetstream.New(own)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, registry.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "restore", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	_, err = backup.Send(ctx, nc, shopFile, backup.SendOptions{})
	if e := wantAPIError(t, err, protocol.CodeConflict); !strings.Contains(e.Message, "cut short") {
		t.Fatalf("restore beside a marker: %v", err)
	}
	if err := kv.Delete(ctx, "restore"); err != nil {
		t.Fatal(err)
	}
	apply(t, c, invoiceContract)
	_, err = backup.Send(ctx, nc, shopFile, backup.SendOptions{})
	if e := wantAPIError(t, err, protocol.CodeConflict); !strings.Contains(e.Message, "bucket datamesh_registry") {
		t.Fatalf("restore into a registry with a contract: %v", err)
	}
	if _, err := c.Append("invoice", "i-1", "InvoiceRequested", []byte(`{"amount":20}`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = backup.Send(ctx, nc, shopFile, backup.SendOptions{})
	if e := wantAPIError(t, err, protocol.CodeConflict); !strings.Contains(e.Message, "holds 1 events") {
		t.Fatalf("restore into a log with an event: %v", err)
	}
	if keys := bucketValues(t, nc, registry.Bucket); len(keys) != 1 {
		t.Fatalf("registry after refused restores: %v, want the contract alone", keys)
	}
}
