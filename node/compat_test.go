package node_test

// The data on disk is an interface: a data directory written by DataMesh
// 0.1.0, before the architecture split (node/testdata/fixture-v0.1.0: an
// owner with contracts, two versions of a projection and an export; a
// reader with a link importing that export and a projection;
// manifest.json describes what they hold), must open with the code at hand.
// TestReopenFixture copies it to a temp dir and checks that events read
// back, projections resume from their checkpoints without a rebuild (their
// files are byte-identical once live, but for the conversion of history in
// 0.1.0's layout, appended), and the link imports nothing twice.
//
// The generator is kept as testdata/fixture-v0.1.0/generate_test.go.txt: to
// regenerate the fixture, copy it into node/ of the commit named in
// manifest.json (generated_by.git_commit) and run there
//
//	DATAMESH_GEN_FIXTURE=/tmp/fixture-out go test -run TestGenerateFixture -count=1 ./node/
//
// DATAMESH_REOPEN_FIXTURE=<dir> checks another copy of a fixture.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

const (
	fixtureReopenEnv = "DATAMESH_REOPEN_FIXTURE"
	fixtureOwner     = "owner"
	fixtureReader    = "reader"
	fixtureExport    = "orders-out"
	fixtureLink      = "orders-in"
	// fixtureFormat names the manifest's layout.
	fixtureFormat = "datamesh-fixture/1"
)

// The resources applied on each node, besides the example files
// (deploy/examples/orders: contracts.yaml, projection-orders.yaml,
// changes/projection-orders-v2.yaml, changes/orderplaced-v2.yaml).
const fixtureExportYAML = `kind: Export
name: orders-out
description: Orders for the reader, without e-mail addresses.
to: [reader]
aggregates: [order]
redact: [email]
`

// fixtureLinkYAML takes the owner's leafnode URL.
const fixtureLinkYAML = `kind: Link
name: orders-in
description: The owner's orders, marked as imported.
peer: owner
url: %s
export: orders-out
transform:
  data: "merge(data, {imported: true})"
`

// fixtureManifest is manifest.json.
type fixtureManifest struct {
	Format      string                  `json:"format"`
	GeneratedBy fixtureGeneratedBy      `json:"generated_by"`
	Notes       []string                `json:"notes"`
	Nodes       map[string]*fixtureNode `json:"nodes"`
	Files       []fixtureFile           `json:"files"`
	TotalBytes  int64                   `json:"total_bytes"`
}

type fixtureGeneratedBy struct {
	DatameshVersion   string `json:"datamesh_version"`
	GitCommit         string `json:"git_commit"`
	NatsServerVersion string `json:"nats_server_version"`
	GoVersion         string `json:"go_version"`
	Generator         string `json:"generator"`
	At                string `json:"at"`
}

type fixtureNode struct {
	Dir        string            `json:"dir"`
	Name       string            `json:"name"`
	Peers      map[string]string `json:"peers"` // peer → shared secret
	Durability string            `json:"durability"`
	// Applied lists the resources applied, in order: example file names or
	// the YAML text itself (the link's url was the owner's leafnode URL
	// of the run, shown as <owner leaf url>).
	Applied []string `json:"applied"`
	LogHead uint64   `json:"log_head"`
	// EventCounts counts events by aggregate type and by aggregate/id.
	EventCounts map[string]int `json:"event_counts"`
	// Events are the stored events as dm.read returns them.
	Events []json.RawMessage `json:"events"`
	// Headers lists the header names of each stored message of the log
	// (read from the stream, not through dm.read).
	Headers     []fixtureMsgHeaders        `json:"headers"`
	Projections []fixtureProjection        `json:"projections"`
	Active      map[string]int             `json:"active,omitempty"`
	Alias       map[string]json.RawMessage `json:"alias_kv,omitempty"` // projection-active.<name> values
	Exports     []fixtureExportState       `json:"exports,omitempty"`
	Links       []fixtureLinkState         `json:"links,omitempty"`
	KV          map[string][]string        `json:"kv_keys"`
	Streams     map[string][]string        `json:"streams"` // account dir → stream names, from the data dir
}

type fixtureMsgHeaders struct {
	Stream  string   `json:"stream"`
	Seq     uint64   `json:"seq"`
	Subject string   `json:"subject"`
	Headers []string `json:"headers"`
}

type fixtureProjection struct {
	Name       string `json:"name"`
	Version    int    `json:"version"`
	Active     bool   `json:"active"`
	State      string `json:"state"`
	AppliedSeq uint64 `json:"applied_seq"`
	Documents  int    `json:"documents"`
	File       string `json:"file"`
	// Docs are every document of this version.
	Docs map[string]json.RawMessage `json:"docs"`
	// History of some keys (o-4 was deleted).
	History map[string][]projection.Version `json:"history,omitempty"`
}

type fixtureExportState struct {
	Name        string `json:"name"`
	Peer        string `json:"peer"`
	Account     string `json:"account"`
	Stream      string `json:"stream"`
	StreamSeq   uint64 `json:"stream_seq"`
	ExportedSeq uint64 `json:"exported_seq"`
	// Headers of each message of the export stream, read by the peer.
	Messages []fixtureMsgHeaders `json:"messages"`
}

type fixtureLinkState struct {
	Name                string          `json:"name"`
	Peer                string          `json:"peer"`
	Export              string          `json:"export"`
	Imported            uint64          `json:"imported"`
	ExportHead          uint64          `json:"export_head"`
	Checkpoint          json.RawMessage `json:"checkpoint"` // datamesh_links checkpoint.<link>, as stored
	CheckpointExportSeq uint64          `json:"checkpoint_export_seq"`
	CheckpointOriginSeq uint64          `json:"checkpoint_origin_seq"`
	CheckpointLocalSeq  uint64          `json:"checkpoint_local_seq"`
}

type fixtureFile struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// fixtureConfig is the config of one fixture node in dir.
func fixtureConfig(name, dir, peer string) node.Config {
	cfg := testConfig(dir)
	cfg.Name = name
	cfg.Peers = map[string]node.Peer{peer: {Secret: testSecret}}
	cfg.Durability = node.DurabilityFsync
	return cfg
}

// openFixtureNode starts a node whose Close the test calls itself (Cleanup closes
// it too if the test fails first).
func openFixtureNode(t testing.TB, cfg node.Config) (*node.Node, *nats.Conn, *client.Client) {
	t.Helper()
	n := startNode(t, cfg)
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return n, nc, client.New(nc)
}

func mustApply(t testing.TB, c *client.Client, yaml []byte, want ...string) []protocol.ApplyResult {
	t.Helper()
	r, err := c.Apply(yaml, false)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, yaml)
	}
	for i, res := range r.Results {
		if len(want) > 0 && res.Status != want[min(i, len(want)-1)] {
			t.Fatalf("apply %s %s: status %s, want %s", res.Kind, res.Name, res.Status, want[min(i, len(want)-1)])
		}
	}
	return r.Results
}

// inProcessJS is a JetStream context on the node's own in-process
// connection (the registry and links buckets are not writable by services,
// but readable; this one reads them with the node's rights).
func inProcessJS(t testing.TB, n *node.Node) jetstream.JetStream {
	t.Helper()
	nc, err := n.Connect(nats.Name("fixture"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func mustReadCategory(t testing.TB, c *client.Client, aggregate string) []protocol.Event {
	t.Helper()
	evs, err := readCategory(c, aggregate)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitVersionsAt polls until each version of name is live at applied.
func waitVersionsAt(t testing.TB, c *client.Client, name string, applied uint64, versions ...int) {
	t.Helper()
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		r, err := c.Projections()
		if err != nil {
			return err
		}
		for _, v := range versions {
			found := false
			for _, s := range r.Projections {
				if s.Name == name && s.Version == v {
					found = true
					if s.State != projection.StateLive || s.Applied != applied {
						return fmt.Errorf("%s v%d: %s at %d, want live at %d", name, v, s.State, s.Applied, applied)
					}
				}
			}
			if !found {
				return fmt.Errorf("no %s v%d", name, v)
			}
		}
		return nil
	})
}

// dumpVersion returns every document of one version of a projection.
func dumpVersion(t testing.TB, c *client.Client, name string, version int) map[string]json.RawMessage {
	t.Helper()
	docs := map[string]json.RawMessage{}
	after := ""
	for {
		r := query(t, c, name, projection.Query{Version: version, List: &projection.Filter{Limit: projection.MaxListLimit, After: after}})
		for _, d := range r.Docs {
			docs[d.Key] = d.Doc
		}
		if r.Next == nil || *r.Next == "" {
			return docs
		}
		after = *r.Next
	}
}

func historyOf(t testing.TB, c *client.Client, name string, version int, key string) []projection.Version {
	t.Helper()
	return query(t, c, name, projection.Query{Version: version, History: ptr(key)}).History
}

// describeNode records a running node's log, projections and KV keys in fn.
func describeNode(t testing.TB, ctx context.Context, fn *fixtureNode, c *client.Client, js jetstream.JetStream, historyKeys []string) {
	t.Helper()
	evs := mustReadCategory(t, c, "order")
	fn.EventCounts = map[string]int{}
	fn.Events = nil
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		fn.Events = append(fn.Events, b)
		fn.EventCounts[ev.Aggregate]++
		fn.EventCounts[ev.Aggregate+"/"+ev.AggregateID]++
	}
	st, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fn.LogHead = info.State.LastSeq
	if int(info.State.Msgs) != len(evs) {
		t.Fatalf("%s: stream holds %d messages, dm.read gave %d", fn.Name, info.State.Msgs, len(evs))
	}
	fn.Headers = nil
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		fn.Headers = append(fn.Headers, fixtureMsgHeaders{Stream: "EVENTS", Seq: seq, Subject: msg.Subject, Headers: headerNames(msg.Header)})
	}
	r, err := c.Projections()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(r.Projections, func(i, j int) bool {
		a, b := r.Projections[i], r.Projections[j]
		return a.Name < b.Name || a.Name == b.Name && a.Version < b.Version
	})
	fn.Projections, fn.Active = nil, map[string]int{}
	for _, s := range r.Projections {
		p := fixtureProjection{Name: s.Name, Version: s.Version, Active: s.Active, State: s.State, AppliedSeq: s.Applied,
			Documents: s.Documents, File: fmt.Sprintf("projections/%s/v%d.db", s.Name, s.Version),
			Docs: dumpVersion(t, c, s.Name, s.Version), History: map[string][]projection.Version{}}
		for _, k := range historyKeys {
			p.History[k] = historyOf(t, c, s.Name, s.Version, k)
		}
		if s.Active {
			fn.Active[s.Name] = s.Version
		}
		fn.Projections = append(fn.Projections, p)
	}
	fn.KV = map[string][]string{}
	fn.Alias = map[string]json.RawMessage{}
	for _, bucket := range []string{"datamesh_registry", "datamesh_links"} {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatalf("%s: %v", bucket, err)
		}
		keys, err := kvKeys(ctx, kv)
		if err != nil {
			t.Fatalf("%s keys: %v", bucket, err)
		}
		fn.KV[bucket] = keys
		for _, k := range keys {
			if name, ok := strings.CutPrefix(k, "projection-active."); ok {
				e, err := kv.Get(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				fn.Alias[name] = json.RawMessage(e.Value())
			}
		}
	}
}

func kvKeys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	l, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	keys := []string{}
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

func headerNames(h nats.Header) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// fixtureFiles lists every file of the data directories under dir.
func fixtureFiles(t testing.TB, dir string) ([]fixtureFile, int64) {
	t.Helper()
	var files []fixtureFile
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel = filepath.ToSlash(rel); !strings.HasPrefix(rel, fixtureOwner+"/") && !strings.HasPrefix(rel, fixtureReader+"/") {
			return nil // manifest.json, generate_test.go.txt
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		files = append(files, fixtureFile{Path: rel, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		total += n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, total
}

// copyTree copies the regular files and directories of src into dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReopenFixture opens a copy of the fixture: everything stored must be
// read back as it was (no projection rebuilds, the alias kept, the link
// resuming from its checkpoint without importing anything twice), and the
// nodes must go on from there.
func TestReopenFixture(t *testing.T) {
	src := os.Getenv(fixtureReopenEnv)
	if src == "" {
		src = filepath.Join("testdata", "fixture-v0.1.0")
	}
	m := loadFixtureManifest(t, src)
	tmp := t.TempDir()
	copyTree(t, src, tmp)
	on, rn := m.Nodes[fixtureOwner], m.Nodes[fixtureReader]
	ownerDir, readerDir := filepath.Join(tmp, on.Dir), filepath.Join(tmp, rn.Dir)
	ownerDBs, readerDBs := readFiles(t, ownerDir, fixtureDBFiles(on)), readFiles(t, readerDir, fixtureDBFiles(rn))

	owner, _, oc := openFixtureNode(t, fixtureConfig(on.Name, ownerDir, rn.Name))
	reader, _, rc := openFixtureNode(t, fixtureConfig(rn.Name, readerDir, on.Name))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ojs, rjs := inProcessJS(t, owner), inProcessJS(t, reader)

	// The projections come back at their checkpoints, live, with the same
	// documents, and their files not folded again (checked below).
	checkProjectionsResumed(t, on, oc)
	checkProjectionsResumed(t, rn, rc)
	// The link recovers its checkpoint before it reaches the owner (its
	// stored URL is the old one).
	lk := rn.Links[0]
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if l := linkStatus(t, rc, lk.Name); l.ExportSeq != lk.CheckpointExportSeq || l.OriginSeq != lk.CheckpointOriginSeq {
			return fmt.Errorf("link before re-apply: %+v", l)
		}
		return nil
	})
	// Everything the manifest lists reads back the same.
	gotOwner := &fixtureNode{Name: on.Name}
	gotReader := &fixtureNode{Name: rn.Name}
	describeNode(t, ctx, gotOwner, oc, ojs, []string{"o-1", "o-4"})
	describeNode(t, ctx, gotReader, rc, rjs, []string{"o-1", "o-4"})
	compareFixtureNode(t, on, gotOwner)
	compareFixtureNode(t, rn, gotReader)
	checkStoredCheckpoint(t, ctx, rjs, lk)
	// No projection file was folded again or rebuilt; history in 0.1.0's
	// layout was converted in place.
	checkFilesKept(t, on.Name, ownerDir, ownerDBs)
	checkFilesKept(t, rn.Name, readerDir, readerDBs)

	reapplyFixtureResources(t, oc, rc, owner.LeafURL(), on, rn)
	newHead := continueAfterReopen(t, oc, rc, on, rn)
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("reopened %s (generated by %s at %s): owner head %d → %d, reader imported 2 new events, nothing twice",
		src, m.GeneratedBy.GitCommit, m.GeneratedBy.At, on.LogHead, newHead)
}

// loadFixtureManifest reads src's manifest.json and checks that src holds
// exactly the files it lists, unchanged (nobody opened it in place).
func loadFixtureManifest(t testing.TB, src string) fixtureManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(src, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m fixtureManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Format != fixtureFormat {
		t.Fatalf("manifest format %q, want %q", m.Format, fixtureFormat)
	}
	// The fixture is intact (nobody opened it in place).
	files, _ := fixtureFiles(t, src)
	if !reflect.DeepEqual(files, m.Files) {
		t.Fatalf("the fixture's files differ from its manifest:\n got %+v\nwant %+v", files, m.Files)
	}
	return m
}

// fixtureDBFiles lists the projection files of fn, relative to its dir.
func fixtureDBFiles(fn *fixtureNode) []string {
	var out []string
	for _, p := range fn.Projections {
		out = append(out, p.File)
	}
	return out
}

// readFiles returns the content of each of rels under dir.
func readFiles(t testing.TB, dir string, rels []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, rel := range rels {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = b
	}
	return out
}

// checkFilesKept fails t unless each projection file under dir is as it
// was (before), or held history in 0.1.0's layout (a copy of every
// version, h:<key>\x00<seq>) and is the same bytes followed by the
// conversion (projection/history_convert.go): commands that touch only
// history keys and leave none of the old layout. Documents are
// deterministic (now() is the event's time), so equal documents alone
// would not show that nothing was folded again: a fold appends documents
// (d:) and the checkpoint, a rebuild starts a new file.
func checkFilesKept(t testing.TB, who, dir string, before map[string][]byte) {
	t.Helper()
	for rel, old := range before {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		applyAOF(keys, parseAOF(t, old))
		oldLayout := slices.ContainsFunc(slices.Collect(maps.Keys(keys)), isOldHistoryKey)
		if bytes.Equal(got, old) {
			if oldLayout {
				t.Fatalf("%s %s: history in the 0.1.0 layout was not converted", who, rel)
			}
			continue
		}
		if !oldLayout || !bytes.HasPrefix(got, old) {
			t.Fatalf("%s %s was rewritten on open (rebuilt?): %d bytes, was %d", who, rel, len(got), len(old))
		}
		tail := parseAOF(t, got[len(old):])
		for _, cmd := range tail {
			if k := cmd[1]; !strings.HasPrefix(k, "h:") && k != "m:history-converting" {
				t.Fatalf("%s %s: opening it wrote %s %q: folded again?", who, rel, cmd[0], k)
			}
		}
		applyAOF(keys, tail)
		for k := range keys {
			if isOldHistoryKey(k) {
				t.Fatalf("%s %s: %q of the 0.1.0 layout is left after the conversion", who, rel, k)
			}
		}
	}
}

func isOldHistoryKey(k string) bool { return strings.HasPrefix(k, "h:") && strings.Contains(k, "\x00") }

// parseAOF reads BuntDB's append-only file: RESP arrays of bulk strings,
// such as set <key> <value> and del <key>.
func parseAOF(t testing.TB, b []byte) [][]string {
	t.Helper()
	var cmds [][]string
	line := func() string {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("AOF: no line end in %q", b[:min(len(b), 40)])
		}
		l := string(b[:i])
		b = b[i+2:]
		return l
	}
	for len(b) > 0 {
		n, err := strconv.Atoi(strings.TrimPrefix(line(), "*"))
		if err != nil || n < 2 {
			t.Fatalf("AOF: a command of %d arguments (%v)", n, err)
		}
		cmd := make([]string, n)
		for i := range cmd {
			l, err := strconv.Atoi(strings.TrimPrefix(line(), "$"))
			if err != nil || l+2 > len(b) {
				t.Fatalf("AOF: a bulk string of %d bytes (%v)", l, err)
			}
			cmd[i], b = string(b[:l]), b[l+2:]
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// applyAOF applies set and del commands to a set of keys.
func applyAOF(keys map[string]bool, cmds [][]string) {
	for _, c := range cmds {
		switch strings.ToLower(c[0]) {
		case "set":
			keys[c[1]] = true
		case "del":
			delete(keys, c[1])
		}
	}
}

// checkProjectionsResumed checks that each projection version of fn is
// back at its stored checkpoint and activity, then waits for each to be
// live there: a rebuild would start from zero.
func checkProjectionsResumed(t testing.TB, fn *fixtureNode, c *client.Client) {
	t.Helper()
	for _, p := range fn.Projections {
		st := status(t, c, p.Name, p.Version)
		if st.Applied != p.AppliedSeq || st.Active != p.Active {
			t.Fatalf("%s %s v%d after reopen: applied %d active %v, want %d %v", fn.Name, p.Name, p.Version, st.Applied, st.Active, p.AppliedSeq, p.Active)
		}
	}
	for _, p := range fn.Projections {
		waitVersionsAt(t, c, p.Name, p.AppliedSeq, p.Version)
	}
}

// compareFixtureNode fails t where got, described from the reopened node,
// differs from want, the manifest's description of it.
func compareFixtureNode(t testing.TB, want, got *fixtureNode) {
	t.Helper()
	if got.LogHead != want.LogHead {
		t.Fatalf("%s log head %d, want %d", want.Name, got.LogHead, want.LogHead)
	}
	if !reflect.DeepEqual(got.EventCounts, want.EventCounts) {
		t.Fatalf("%s event counts %v, want %v", want.Name, got.EventCounts, want.EventCounts)
	}
	for i := range want.Events {
		if !jsonEqual(got.Events[i], want.Events[i]) {
			t.Fatalf("%s event %d:\n got %s\nwant %s", want.Name, i, got.Events[i], want.Events[i])
		}
	}
	if !reflect.DeepEqual(got.Headers, want.Headers) {
		t.Fatalf("%s stored headers differ:\n got %+v\nwant %+v", want.Name, got.Headers, want.Headers)
	}
	if !reflect.DeepEqual(got.Active, want.Active) {
		t.Fatalf("%s active versions %v, want %v", want.Name, got.Active, want.Active)
	}
	for name, a := range want.Alias {
		if !jsonEqual(got.Alias[name], a) {
			t.Fatalf("%s alias %s: %s, want %s", want.Name, name, got.Alias[name], a)
		}
	}
	if len(got.Projections) != len(want.Projections) {
		t.Fatalf("%s projections %d, want %d", want.Name, len(got.Projections), len(want.Projections))
	}
	for i, wp := range want.Projections {
		compareFixtureProjection(t, want.Name, wp, got.Projections[i])
	}
	for bucket, keys := range want.KV {
		if !slices.Equal(got.KV[bucket], keys) {
			t.Fatalf("%s %s keys %v, want %v", want.Name, bucket, got.KV[bucket], keys)
		}
	}
}

// compareFixtureProjection fails t where gp, read from nodeName's reopened
// projection version, differs from wp, the manifest's.
func compareFixtureProjection(t testing.TB, nodeName string, wp, gp fixtureProjection) {
	t.Helper()
	if gp.Name != wp.Name || gp.Version != wp.Version || gp.AppliedSeq != wp.AppliedSeq || gp.Documents != wp.Documents || gp.Active != wp.Active {
		t.Fatalf("%s projection %s v%d: %+v", nodeName, wp.Name, wp.Version, gp)
	}
	if len(gp.Docs) != len(wp.Docs) {
		t.Fatalf("%s %s v%d: %d docs, want %d", nodeName, wp.Name, wp.Version, len(gp.Docs), len(wp.Docs))
	}
	for k, d := range wp.Docs {
		if !jsonEqual(gp.Docs[k], d) {
			t.Fatalf("%s %s v%d doc %s: %s, want %s (rebuilt?)", nodeName, wp.Name, wp.Version, k, gp.Docs[k], d)
		}
	}
	gh, _ := json.Marshal(gp.History)
	wh, _ := json.Marshal(wp.History)
	if !jsonEqual(gh, wh) {
		t.Fatalf("%s %s v%d history:\n got %s\nwant %s", nodeName, wp.Name, wp.Version, gh, wh)
	}
}

// checkStoredCheckpoint checks the link's checkpoint as stored in the
// reader's links bucket against the manifest's.
func checkStoredCheckpoint(t testing.TB, ctx context.Context, rjs jetstream.JetStream, lk fixtureLinkState) {
	t.Helper()
	e, err := func() (jetstream.KeyValueEntry, error) {
		kv, err := rjs.KeyValue(ctx, "datamesh_links")
		if err != nil {
			return nil, err
		}
		return kv.Get(ctx, "checkpoint."+lk.Name)
	}()
	if err != nil || !jsonEqual(e.Value(), lk.Checkpoint) {
		t.Fatalf("stored checkpoint: %v, want %s (%v)", e, lk.Checkpoint, err)
	}
}

// reapplyFixtureResources applies the fixture's resources again and checks
// that only the link changes (its URL is ownerLeafURL now), and that the
// link comes back at the export's head without importing anything again.
func reapplyFixtureResources(t testing.TB, oc, rc *client.Client, ownerLeafURL string, on, rn *fixtureNode) {
	t.Helper()
	lk := rn.Links[0]
	// The stored definitions are the applied ones: applying them again
	// changes nothing.
	mustApply(t, oc, readExample(t, "contracts.yaml"), "unchanged")
	mustApply(t, oc, readExample(t, "changes/orderplaced-v2.yaml"), "unchanged")
	mustApply(t, oc, readExample(t, "projection-orders.yaml"), "unchanged")
	mustApply(t, oc, readExample(t, "changes/projection-orders-v2.yaml"), "unchanged")
	mustApply(t, oc, []byte(fixtureExportYAML), "unchanged")
	mustApply(t, rc, readExample(t, "contracts.yaml"), "unchanged")
	mustApply(t, rc, readExample(t, "projection-orders.yaml"), "unchanged")
	// The link, at the owner's new leafnode URL.
	mustApply(t, rc, fmt.Appendf(nil, fixtureLinkYAML, ownerLeafURL), "updated")
	exportHead := on.Exports[0].StreamSeq
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		l := linkStatus(t, rc, lk.Name)
		if !l.Connected || l.State != protocol.LinkImporting || l.ExportHead != exportHead || l.ExportSeq != exportHead {
			return fmt.Errorf("link after re-apply: %+v", l)
		}
		return nil
	})
	if l := linkStatus(t, rc, lk.Name); l.Imported != 0 {
		t.Fatalf("the link imported %d events again: %+v", l.Imported, l)
	}
	if evs := mustReadCategory(t, rc, "order"); len(evs) != len(rn.Events) {
		t.Fatalf("reader has %d order events after the link came back, want %d", len(evs), len(rn.Events))
	}
}

// continueAfterReopen appends two events on the reopened owner and checks
// that the owner and the reader go on from the stored state; it returns
// the owner's new log head.
func continueAfterReopen(t testing.TB, oc, rc *client.Client, on, rn *fixtureNode) uint64 {
	t.Helper()
	lk := rn.Links[0]
	exportHead := on.Exports[0].StreamSeq
	// The owner goes on: expected versions see the stored aggregates, the
	// export continues its stream, the reader imports only the new events.
	var lastO1 uint64
	for _, raw := range on.Events {
		var ev protocol.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.AggregateID == "o-1" {
			lastO1 = ev.Seq
		}
	}
	_, err := oc.Append("order", "o-1", "ItemAdded", []byte(`{"sku":"late","price":1}`), client.AppendOptions{ExpectedVersion: client.Expect(lastO1 - 1)})
	wantAPIError(t, err, protocol.CodeVersionConflict)
	r1, err := oc.Append("order", "o-1", "ItemAdded", []byte(`{"sku":"late","price":1}`), client.AppendOptions{ExpectedVersion: client.Expect(lastO1)})
	if err != nil || r1.Seq != on.LogHead+1 {
		t.Fatalf("append after reopen: %+v, %v", r1, err)
	}
	r2, err := oc.Append("order", "o-7", "OrderPlaced", []byte(`{"customer":"c-7","total":1,"email":"c7@example.com"}`), client.AppendOptions{ExpectedVersion: client.Expect(0)})
	if err != nil || r2.Seq != on.LogHead+2 {
		t.Fatalf("append after reopen: %+v, %v", r2, err)
	}
	newHead := r2.Seq
	waitVersionsAt(t, oc, "orders", newHead, 1, 2)
	want := len(rn.Events) + 2
	evs := waitCategory(t, rc, "order", want)
	checkExactlyOnce(t, evs, want)
	for _, ev := range evs[len(rn.Events):] {
		if ev.Origin.Seq <= on.LogHead || strings.Contains(string(ev.Data), "@example.com") || !strings.Contains(string(ev.Data), `"imported":true`) {
			t.Fatalf("imported after reopen: %+v %s", ev.Origin, ev.Data)
		}
	}
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		l := linkStatus(t, rc, lk.Name)
		if l.Imported != 2 || l.ExportSeq != exportHead+2 || l.OriginSeq != newHead || l.DeadLetters != 0 {
			return fmt.Errorf("link: %+v", l)
		}
		return nil
	})
	waitVersionsAt(t, rc, "orders", uint64(want), 1)
	if d := docMap(t, query(t, oc, "orders", projection.Query{Get: ptr("o-7")}).Doc); d["item_count"] != 0.0 {
		t.Fatalf("the alias answered %v: want v2 (item_count)", d)
	}
	// The previous version was stored with the alias: rollback finds it.
	if a, err := oc.Rollback("orders"); err != nil || a.Active != 1 || a.Previous != 2 {
		t.Fatalf("rollback after reopen: %+v, %v", a, err)
	}
	return newHead
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
