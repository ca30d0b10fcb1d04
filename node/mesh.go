package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
)

// Headers an imported event carries in the recipient's log, and an exported
// event in an export stream.
const (
	HeaderOriginNode = "Dm-Origin-Node" // the node the event was exported from
	HeaderOriginSeq  = "Dm-Origin-Seq"  // its seq in that node's log
	HeaderOriginID   = "Dm-Origin-Id"   // its ce-id there
	HeaderLink       = "Dm-Link"        // the link that imported it
	HeaderLinkSeq    = "Dm-Link-Seq"    // its seq in the export stream
	// HeaderMeshPath lists the nodes an event went through, comma separated.
	// A node never exports an event whose path holds its own name.
	HeaderMeshPath = "Dm-Mesh-Path"
)

const (
	// linksKV holds link checkpoints and dead letters.
	linksKV = "datamesh_links"
	// meshBatch is how many events a link or an export moves at once.
	meshBatch = 500
	// meshWait bounds one wait for new events, and so how long Close waits.
	meshWait = time.Second
)

func exportKVKey(name string) string      { return "export." + name }
func linkKVKey(name string) string        { return "link." + name }
func exportStreamName(name string) string { return "EXPORT_" + name }

// mesh runs the node's exports and links.
type mesh struct {
	n   *Node
	log hclog.Logger
	kv  jetstream.KeyValue // linksKV
	ctx context.Context
	// stop ends every worker; see close.
	stop context.CancelFunc

	mu      sync.Mutex
	exports map[string]*exportRunner
	links   map[string]*linkWorker
	// remotes is the leafnode URL of each peer the links use.
	remotes map[string]string
	// catalog answers mesh.catalog in each export account.
	catalog []*nats.Conn
	// reloadMu serializes server reloads.
	reloadMu sync.Mutex
}

func newMesh(n *Node) *mesh {
	return &mesh{n: n, log: n.log.Named("mesh"), exports: map[string]*exportRunner{},
		links: map[string]*linkWorker{}, remotes: map[string]string{}}
}

// open loads the stored exports and links and starts them.
func (m *mesh) open(ctx context.Context) error {
	m.ctx, m.stop = context.WithCancel(ctx)
	kv, err := m.n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      linksKV,
		Description: "DataMesh link checkpoints and dead letters",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", linksKV, err)
	}
	m.kv = kv
	for _, peer := range sortedPeers(m.n.cfg) {
		if err := m.serveCatalog(peer); err != nil {
			return err
		}
	}
	var exports []*meshlink.Export
	if err := m.load(ctx, "export.>", func(b []byte) error {
		var e meshlink.Export
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
		exports = append(exports, &e)
		return nil
	}); err != nil {
		return err
	}
	var links []*meshlink.Link
	if err := m.load(ctx, "link.>", func(b []byte) error {
		var l meshlink.Link
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		links = append(links, &l)
		return nil
	}); err != nil {
		return err
	}
	if e := m.start(exports, links); e != nil {
		return e
	}
	// Copies left by a stop between storing a change and deleting them.
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.sweepExportStreams(ctx); err != nil {
		m.log.Warn("export copies not swept; the next apply tries again", "error", err)
	}
	return nil
}

func (m *mesh) load(ctx context.Context, filter string, f func([]byte) error) error {
	keys, err := listKeys(ctx, m.n.registry.kv, filter)
	if err != nil {
		return fmt.Errorf("list %s: %w", filter, err)
	}
	for _, key := range keys {
		e, err := m.n.registry.kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("load %s: %w", key, err)
		}
		if err := f(e.Value()); err != nil {
			return fmt.Errorf("load %s: %w", key, err)
		}
	}
	return nil
}

// close stops every worker and waits for them.
func (m *mesh) close() {
	if m.stop == nil {
		return
	}
	m.stop()
	m.mu.Lock()
	var all []interface{ wait() }
	for _, r := range m.exports {
		all = append(all, r)
	}
	for _, l := range m.links {
		all = append(all, l)
	}
	conns := m.catalog
	m.mu.Unlock()
	for _, w := range all {
		w.wait()
	}
	for _, nc := range conns {
		nc.Close()
	}
}

// check validates exports and links against the node's config and the
// links already running; it reports what apply would do to each.
func (m *mesh) check(exports []*meshlink.Export, links []*meshlink.Link) ([]ApplyResult, *Error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var results []ApplyResult
	seen := map[string]bool{}
	for _, e := range exports {
		if seen["e/"+e.Name] {
			return nil, errBadRequest("export %s appears twice", e.Name)
		}
		seen["e/"+e.Name] = true
		for _, p := range e.To {
			if _, ok := m.n.cfg.Peers[p]; !ok {
				return nil, errBadRequest("export %s: peer %q is not configured: add it under peers in the node config, with the secret both nodes share", e.Name, p)
			}
		}
		status := "created"
		if r := m.exports[e.Name]; r != nil {
			status = "updated"
			if r.spec.Equal(e) {
				status = "unchanged"
			}
		}
		results = append(results, ApplyResult{Kind: meshlink.KindExport, Name: e.Name, Status: status})
	}
	urls := map[string]string{}
	for peer, u := range m.remotes {
		urls[peer] = u
	}
	for _, l := range links {
		if seen["l/"+l.Name] {
			return nil, errBadRequest("link %s appears twice", l.Name)
		}
		seen["l/"+l.Name] = true
		if _, ok := m.n.cfg.Peers[l.Peer]; !ok {
			return nil, errBadRequest("link %s: peer %q is not configured: add it under peers in the node config, with the secret both nodes share", l.Name, l.Peer)
		}
		old := m.links[l.Name]
		if u, ok := urls[l.Peer]; ok && u != l.URL && !(old != nil && m.onlyLinkTo(l.Peer, l.Name)) {
			return nil, errBadRequest("link %s: peer %s is already linked at %s; all links to one peer share its leafnode connection", l.Name, l.Peer, u)
		}
		urls[l.Peer] = l.URL
		status := "created"
		if old != nil {
			status = "updated"
			if old.spec.Equal(l) {
				status = "unchanged"
			}
		}
		results = append(results, ApplyResult{Kind: meshlink.KindLink, Name: l.Name, Status: status})
	}
	return results, nil
}

// onlyLinkTo reports whether name is the only running link to peer. m.mu must be held.
func (m *mesh) onlyLinkTo(peer, name string) bool {
	for n, l := range m.links {
		if l.spec.Peer == peer && n != name {
			return false
		}
	}
	return true
}

// commit stores exports and links and (re)starts those that changed.
func (m *mesh) commit(ctx context.Context, exports []*meshlink.Export, links []*meshlink.Link) *Error {
	for _, e := range exports {
		if err := m.put(ctx, exportKVKey(e.Name), e); err != nil {
			return errUnavailable("store export %s: %v", e.Name, err)
		}
	}
	for _, l := range links {
		if err := m.put(ctx, linkKVKey(l.Name), l); err != nil {
			return errUnavailable("store link %s: %v", l.Name, err)
		}
	}
	if e := m.start(exports, links); e != nil {
		return e
	}
	if len(exports) == 0 {
		return nil
	}
	// A peer taken out of an export's to loses its copy at once.
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.sweepExportStreams(ctx); err != nil {
		return errUnavailable("revoke export copies (the node tries again at its next start or apply): %v", err)
	}
	return nil
}

func (m *mesh) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = m.n.registry.kv.Put(ctx, key, b)
	return err
}

// start runs the given exports and links, replacing running ones whose
// definition changed.
func (m *mesh) start(exports []*meshlink.Export, links []*meshlink.Link) *Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range exports {
		if old := m.exports[e.Name]; old != nil {
			if old.spec.Equal(e) {
				continue
			}
			old.cancel()
			old.wait()
		}
		m.exports[e.Name] = m.startExport(e)
	}

	var changed []*meshlink.Link
	for _, l := range links {
		if old := m.links[l.Name]; old != nil {
			if old.spec.Equal(l) {
				continue
			}
			old.cancel()
			old.wait()
			delete(m.links, l.Name)
		}
		changed = append(changed, l)
	}
	if len(changed) == 0 {
		return nil
	}
	remotes := map[string]string{}
	for _, l := range m.links {
		remotes[l.spec.Peer] = l.spec.URL
	}
	for _, l := range changed {
		remotes[l.Peer] = l.URL
	}
	if err := m.reload(remotes); err != nil {
		return errUnavailable("connect to peers: %v", err)
	}
	for _, l := range changed {
		w, err := m.startLink(l)
		if err != nil {
			return errInternal("start link %s: %v", l.Name, err)
		}
		m.links[l.Name] = w
	}
	return nil
}

// reload makes the embedded server solicit one leafnode per linked peer,
// bound to the peer's account here and signed in with the shared secret.
// m.mu must be held.
func (m *mesh) reload(remotes map[string]string) error {
	same := len(remotes) == len(m.remotes)
	for p, u := range remotes {
		same = same && m.remotes[p] == u
	}
	if same {
		return nil
	}
	peers := make([]string, 0, len(remotes))
	for p := range remotes {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	var list []*server.RemoteLeafOpts
	for _, p := range peers {
		u, err := url.Parse(remotes[p])
		if err != nil {
			return fmt.Errorf("peer %s: %w", p, err)
		}
		u.User = url.UserPassword(m.n.cfg.Name, m.n.cfg.Peers[p].Secret)
		list = append(list, &server.RemoteLeafOpts{
			LocalAccount: peerAccount(p),
			URLs:         []*url.URL{u},
		})
	}
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	opts := m.n.opts.Clone()
	opts.LeafNode.Remotes = list
	if err := m.n.srv.ReloadOptions(opts); err != nil {
		return err
	}
	m.n.opts = opts
	m.remotes = remotes
	m.log.Info("leafnode remotes", "peers", strings.Join(peers, ","))
	return nil
}

// leafConnected reports whether a leafnode connection is up in account.
func (m *mesh) leafConnected(account string) bool {
	lz, err := m.n.srv.Leafz(&server.LeafzOptions{Account: account})
	return err == nil && len(lz.Leafs) > 0
}

// retry restarts a failed link from its checkpoint.
func (m *mesh) retry(name string) *Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.links[name]
	if old == nil {
		return newError(CodeNotFound, 404, "no link %q", name)
	}
	old.cancel()
	old.wait()
	w, err := m.startLink(old.spec)
	if err != nil {
		return errInternal("start link %s: %v", name, err)
	}
	m.links[name] = w
	return nil
}

// MeshStatus answers dm.admin.mesh.
type MeshStatus struct {
	Links   []LinkStatus   `json:"links"`
	Exports []ExportStatus `json:"exports"`
}

func (m *mesh) status() MeshStatus {
	m.mu.Lock()
	links := make([]*linkWorker, 0, len(m.links))
	for _, l := range m.links {
		links = append(links, l)
	}
	exports := make([]*exportRunner, 0, len(m.exports))
	for _, e := range m.exports {
		exports = append(exports, e)
	}
	m.mu.Unlock()
	st := MeshStatus{Links: []LinkStatus{}, Exports: []ExportStatus{}}
	for _, l := range links {
		st.Links = append(st.Links, l.status())
	}
	for _, e := range exports {
		st.Exports = append(st.Exports, e.status()...)
	}
	sort.Slice(st.Links, func(i, j int) bool { return st.Links[i].Name < st.Links[j].Name })
	sort.Slice(st.Exports, func(i, j int) bool {
		if st.Exports[i].Name != st.Exports[j].Name {
			return st.Exports[i].Name < st.Exports[j].Name
		}
		return st.Exports[i].Peer < st.Exports[j].Peer
	})
	return st
}

func (m *mesh) specs() ([]meshlink.Export, []meshlink.Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exports := []meshlink.Export{}
	for _, e := range m.exports {
		exports = append(exports, *e.spec)
	}
	links := []meshlink.Link{}
	for _, l := range m.links {
		links = append(links, *l.spec)
	}
	sort.Slice(exports, func(i, j int) bool { return exports[i].Name < exports[j].Name })
	sort.Slice(links, func(i, j int) bool { return links[i].Name < links[j].Name })
	return exports, links
}

// PeerCatalog is what one peer shows this node: the exports it grants it,
// with the contracts of their event types.
type PeerCatalog struct {
	Node    string          `json:"node"`
	Exports []ExportCatalog `json:"exports"`
	Error   string          `json:"error,omitempty"`
}

// ExportCatalog is one export as its peers see it.
type ExportCatalog struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Aggregates  []string       `json:"aggregates"`
	Types       []string       `json:"types,omitempty"`
	Redact      []string       `json:"redact,omitempty"`
	Stream      string         `json:"stream"`
	EventTypes  []CatalogEntry `json:"event_types"`
}

// serveCatalog answers mesh.catalog in peer's export account with what the
// exports granted to peer show: never more.
func (m *mesh) serveCatalog(peer string) error {
	nc, err := m.n.connectAccount(exportAccount(peer), nats.Name("datamesh-mesh-catalog"))
	if err != nil {
		return fmt.Errorf("mesh catalog for %s: %w", peer, err)
	}
	if _, err := nc.Subscribe(subjectMeshCatalog, func(msg *nats.Msg) {
		b, _ := json.Marshal(m.catalogFor(peer))
		_ = msg.Respond(b)
	}); err != nil {
		nc.Close()
		return fmt.Errorf("mesh catalog for %s: %w", peer, err)
	}
	m.catalog = append(m.catalog, nc)
	return nil
}

func (m *mesh) catalogFor(peer string) PeerCatalog {
	pc := PeerCatalog{Node: m.n.cfg.Name, Exports: []ExportCatalog{}}
	exports, _ := m.specs()
	all := m.n.Catalog().EventTypes
	for _, e := range exports {
		if !e.Grants(peer) {
			continue
		}
		ec := ExportCatalog{Name: e.Name, Description: e.Description, Aggregates: e.Aggregates, Types: e.Types,
			Redact: e.Redact, Stream: exportStreamName(e.Name), EventTypes: []CatalogEntry{}}
		for _, t := range all {
			if e.Selects(t.Aggregate, t.Type) {
				ec.EventTypes = append(ec.EventTypes, t)
			}
		}
		pc.Exports = append(pc.Exports, ec)
	}
	return pc
}

// meshCatalog asks every linked peer for its catalog.
func (m *mesh) meshCatalog() []PeerCatalog {
	m.mu.Lock()
	peers := make([]string, 0, len(m.remotes))
	for p := range m.remotes {
		peers = append(peers, p)
	}
	m.mu.Unlock()
	sort.Strings(peers)
	out := []PeerCatalog{}
	for _, p := range peers {
		pc := PeerCatalog{Node: p, Exports: []ExportCatalog{}}
		if err := m.askCatalog(p, &pc); err != nil {
			pc.Error = err.Error()
		}
		out = append(out, pc)
	}
	return out
}

func (m *mesh) askCatalog(peer string, pc *PeerCatalog) error {
	nc, err := m.n.PeerConn(peer)
	if err != nil {
		return err
	}
	defer nc.Close()
	msg, err := nc.Request(subjectMeshCatalog, nil, 2*time.Second)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("peer %s did not answer: not connected?", peer)
		}
		return err
	}
	return json.Unmarshal(msg.Data, pc)
}

// backoff waits before a worker tries again; false if ctx ended.
func backoff(ctx context.Context, attempt int) bool {
	d := time.Duration(100<<min(attempt, 5)) * time.Millisecond // 0.1s .. 3.2s
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fetchResets bounds how often one fetch re-creates its consumer. An
// ordered consumer re-creates the server's consumer on every Fetch, and by
// default retries that forever (it does not give up even on a closed
// connection), which once hung a node's Close while a peer was gone. One
// attempt: the worker's own loop retries, and stops with its context.
const fetchResets = 1

// fetch returns the next messages of an ordered consumer: what is there at
// once, else the first to arrive within meshWait (none on timeout).
func fetch(cons jetstream.Consumer, max int) ([]jetstream.Msg, error) {
	collect := func(b jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
		if err != nil {
			return nil, err
		}
		var out []jetstream.Msg
		for msg := range b.Messages() {
			out = append(out, msg)
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return out, err
		}
		return out, nil
	}
	msgs, err := collect(cons.FetchNoWait(max))
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	if msgs, err = collect(cons.Fetch(1, jetstream.FetchMaxWait(meshWait))); err != nil || len(msgs) == 0 {
		return msgs, err
	}
	// Whatever arrived with the first one comes in the same batch.
	more, err := collect(cons.FetchNoWait(max - 1))
	return append(msgs, more...), err
}

// rate measures events per second over windows of a few seconds.
type rate struct {
	start time.Time
	count uint64
	last  float64
}

func (r *rate) add(n int, now time.Time) {
	if r.start.IsZero() {
		r.start = now
	}
	r.count += uint64(n)
	if d := now.Sub(r.start); d >= 5*time.Second {
		r.last = float64(r.count) / d.Seconds()
		r.start, r.count = now, 0
	}
}

func (r *rate) perSecond(now time.Time) float64 {
	if d := now.Sub(r.start); !r.start.IsZero() && d >= time.Second && r.count > 0 {
		return float64(r.count) / d.Seconds()
	}
	if !r.start.IsZero() && now.Sub(r.start) > 10*time.Second {
		return 0
	}
	return r.last
}

// originSeqAt reads the Dm-Origin-Seq header of message seq of an export
// stream with a direct get. api is the JetStream API prefix ("$JS.API", or
// "$JS.<domain>.API" across a leafnode). max_bytes is set because without
// it nats-server reads its options unlocked, which races with the reloads
// that links make.
func originSeqAt(ctx context.Context, nc *nats.Conn, api, stream string, seq uint64) (uint64, error) {
	body := fmt.Appendf(nil, `{"seq":%d,"max_bytes":%d}`, seq, 1<<20)
	resp, err := nc.RequestWithContext(ctx, api+".DIRECT.GET."+stream, body)
	if err != nil {
		return 0, err
	}
	if st := resp.Header.Get("Status"); st != "" {
		return 0, fmt.Errorf("direct get %s %d: %s %s", stream, seq, st, resp.Header.Get("Description"))
	}
	v, err := strconv.ParseUint(resp.Header.Get(HeaderOriginSeq), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("message %d of %s has no %s", seq, stream, HeaderOriginSeq)
	}
	return v, nil
}
