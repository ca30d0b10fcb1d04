package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

// The environment of TestHelperNodeProcess: set, the test binary runs a
// node in this process for a test in its parent to SIGKILL.
const (
	envNodeDir        = "DATAMESH_TEST_NODE_DIR"
	envNodeDurability = "DATAMESH_TEST_NODE_DURABILITY"
	envNodeURLFile    = "DATAMESH_TEST_NODE_URL_FILE"
	// envNodeConfig, if set, is a YAML config file overlaid on the test
	// config (name, leaf_listen, peers: the crash test's two nodes).
	envNodeConfig = "DATAMESH_TEST_NODE_CONFIG"
)

// nodeProcess is a node in a child process: the test binary running
// TestHelperNodeProcess.
type nodeProcess struct {
	cmd    *exec.Cmd
	url    string
	log    string // its stdout and stderr
	exited chan struct{}
}

// startNodeProcess starts a node process on dataDir and waits until it
// serves clients. It is killed when t ends. An error is a node that did
// not start (with the end of its log).
func startNodeProcess(t testing.TB, dataDir, durability string) (*nodeProcess, error) {
	t.Helper()
	return startNodeProcessEnv(t, dataDir, durability)
}

// startNodeProcessEnv is startNodeProcess with more environment for the
// child (envNodeConfig=...).
func startNodeProcessEnv(t testing.TB, dataDir, durability string, env ...string) (*nodeProcess, error) {
	t.Helper()
	work := t.TempDir()
	urlFile := filepath.Join(work, "url")
	p := &nodeProcess{log: filepath.Join(work, "node.log"), exited: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperNodeProcess$", "-test.count=1")
	p.cmd.Env = append(os.Environ(), envNodeDir+"="+dataDir, envNodeDurability+"="+durability, envNodeURLFile+"="+urlFile)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// The child runs until its stdin closes: it ends with this process.
	if _, err := p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node process: %v", err)
	}
	go func() {
		p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	err = nodetest.Poll(context.Background(), 30*time.Second, 5*time.Millisecond, func() (bool, error) {
		select {
		case <-p.exited:
			return false, errors.New("node process exited")
		default:
		}
		b, err := os.ReadFile(urlFile)
		p.url = string(b)
		return err == nil, nil
	})
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("node on %s (%s): %w; its log ends:\n%s", dataDir, durability, err, p.tail(2000))
	}
	return p, nil
}

// mustStartNodeProcess is startNodeProcess failing t on error.
func mustStartNodeProcess(t testing.TB, dataDir, durability string) *nodeProcess {
	t.Helper()
	p, err := startNodeProcess(t, dataDir, durability)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// kill sends SIGKILL and waits until the process is gone (its files
// closed). Safe to call twice.
func (p *nodeProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// tail returns the last n bytes of the node's log.
func (p *nodeProcess) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ackedEvent is an append the node acknowledged, as it was sent.
type ackedEvent struct {
	Seq                 uint64
	Aggregate, ID, Type string
	CEID                string  // "" if the node made the id
	Expected            *uint64 // Dm-Expected-Version, if sent
	Data                []byte
}

// appendLoad is clients appending one event at a time, each waiting for
// its answer, until the node is killed under them.
type appendLoad struct {
	url   string
	cycle int
	small bool // no big events

	stopping atomic.Bool // the node is about to be killed: errors are expected
	halt     atomic.Bool // the clients stop after their current append
	count    atomic.Int64
	mu       sync.Mutex
	acked    []ackedEvent
	errs     []error // before stopping
}

// Loads' shape: clients each with ownIDs aggregates of their own (with
// expected versions) and sharedIDs aggregates all of them write to. One
// event in eight is big, so that a few cycles fill nats-server's 8 MiB
// message blocks and the log moves on to new block files under load
// (without the race detector: with it, the node writes 3 times less).
const (
	loadClients = 16
	ownIDs      = 8
	sharedIDs   = 3
	padBytes    = 200
	bigPadBytes = 8 * 1024
)

// runAppendLoad runs the clients against p until they have wanted acks
// (or for most), then SIGKILLs p while they are still sending, and
// returns every append acknowledged. Unexpected errors before the kill
// fail t.
func runAppendLoad(t testing.TB, p *nodeProcess, cycle int, wanted int64, most time.Duration) []ackedEvent {
	t.Helper()
	l := &appendLoad{url: p.url, cycle: cycle}
	var wg sync.WaitGroup
	for k := range loadClients {
		nc, err := nats.Connect(p.url, nats.NoReconnect())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer nc.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.client(nc, k)
		}()
	}
	start := time.Now()
	_ = nodetest.Poll(context.Background(), most, time.Millisecond, func() (bool, error) {
		return l.count.Load() >= wanted, nil
	})
	l.stopping.Store(true)
	p.kill()
	wg.Wait()
	t.Logf("cycle %d: %d appends acknowledged in %v, then SIGKILL", cycle, len(l.acked), time.Since(start).Round(time.Millisecond))
	if len(l.errs) > 0 {
		t.Fatalf("cycle %d: %d errors before the kill, the first: %v", cycle, len(l.errs), l.errs[0])
	}
	if len(l.acked) == 0 {
		t.Fatalf("cycle %d: no append acknowledged", cycle)
	}
	return l.acked
}

// client k appends until its connection fails.
func (l *appendLoad) client(nc *nats.Conn, k int) {
	versions := make(map[string]uint64) // its own aggregates' versions
	for i := 0; !l.halt.Load(); i++ {
		ev := l.event(k, i, versions)
		r, err := sendAppend(nc, ev)
		if err == nil && r.Duplicate {
			err = fmt.Errorf("%s/%s %s: a first append answered duplicate (seq %d)", ev.Aggregate, ev.ID, ev.CEID, r.Seq)
		}
		if err != nil {
			if !l.stopping.Load() {
				l.mu.Lock()
				l.errs = append(l.errs, err)
				l.mu.Unlock()
			}
			return
		}
		ev.Seq = r.Seq
		if ev.Aggregate == "order" {
			versions[ev.ID] = r.Seq
		}
		l.mu.Lock()
		l.acked = append(l.acked, ev)
		l.mu.Unlock()
		l.count.Add(1)
	}
}

// event is client k's i-th append: one in four to a shared aggregate, the
// others to its own (half of them with the expected version); two in
// three with a ce-id; one in eight big.
func (l *appendLoad) event(k, i int, versions map[string]uint64) ackedEvent {
	ev := ackedEvent{Aggregate: "order", ID: fmt.Sprintf("o%d-%d-%d", l.cycle, k, i%ownIDs), Type: "ItemAdded"}
	if i%4 == 3 {
		ev.Aggregate, ev.ID, ev.Type = "stock", "s-"+strconv.Itoa(i%sharedIDs), "StockMoved"
	} else if i%2 == 0 {
		v := versions[ev.ID]
		ev.Expected = &v
	}
	if i%3 != 1 {
		ev.CEID = fmt.Sprintf("e%d-%d-%d", l.cycle, k, i)
	}
	pad := padBytes
	if i%8 == 5 && !l.small {
		pad = bigPadBytes
	}
	ev.Data, _ = json.Marshal(map[string]any{"cycle": l.cycle, "client": k, "i": i, "pad": strings.Repeat("x", pad)})
	return ev
}

// sendAppend sends ev as a bare request and decodes the reply.
func sendAppend(nc *nats.Conn, ev ackedEvent) (protocol.AppendReply, error) {
	m := nats.NewMsg(protocol.SubjectAppend + "." + ev.Aggregate + "." + ev.ID)
	m.Header.Set(protocol.HeaderType, ev.Type)
	if ev.CEID != "" {
		m.Header.Set(protocol.HeaderID, ev.CEID)
	}
	if ev.Expected != nil {
		m.Header.Set(protocol.HeaderExpectedVersion, strconv.FormatUint(*ev.Expected, 10))
	}
	m.Data = ev.Data
	var r protocol.AppendReply
	resp, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		return r, fmt.Errorf("append %s/%s: %w", ev.Aggregate, ev.ID, err)
	}
	if resp.Header.Get(micro.ErrorCodeHeader) != "" {
		return r, fmt.Errorf("append %s/%s: error reply %s", ev.Aggregate, ev.ID, resp.Data)
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return r, fmt.Errorf("append %s/%s: reply %q: %w", ev.Aggregate, ev.ID, resp.Data, err)
	}
	return r, nil
}

// sameEvent says how stored differs from what ev sent ("" if it does not).
func sameEvent(stored protocol.Event, ev ackedEvent) string {
	var a, b bytes.Buffer
	if err := json.Compact(&a, stored.Data); err != nil {
		return fmt.Sprintf("data %q is not JSON", stored.Data)
	}
	json.Compact(&b, ev.Data)
	switch {
	case stored.Aggregate != ev.Aggregate || stored.AggregateID != ev.ID:
		return fmt.Sprintf("aggregate %s/%s, want %s/%s", stored.Aggregate, stored.AggregateID, ev.Aggregate, ev.ID)
	case stored.Type != ev.Type:
		return fmt.Sprintf("type %s, want %s", stored.Type, ev.Type)
	case ev.CEID != "" && stored.ID != ev.CEID:
		return fmt.Sprintf("id %s, want %s", stored.ID, ev.CEID)
	case !bytes.Equal(a.Bytes(), b.Bytes()):
		return fmt.Sprintf("data %s, want %s", a.Bytes(), b.Bytes())
	}
	return ""
}

// readStoredLog reads the node's log (the categories the loads write)
// from seq from on, by seq.
func readStoredLog(t testing.TB, nc *nats.Conn, from uint64) map[uint64]protocol.Event {
	t.Helper()
	c := client.New(nc)
	stored := make(map[uint64]protocol.Event)
	for _, aggregate := range []string{"order", "stock"} {
		for req := (protocol.ReadRequest{FromSeq: from}); ; {
			page, err := c.Read(aggregate, "", req)
			if err != nil {
				t.Fatalf("read %s from %d: %v", aggregate, req.FromSeq, err)
			}
			for _, ev := range page.Events {
				stored[ev.Seq] = ev
			}
			if req.FromSeq = page.NextSeq; req.FromSeq == 0 {
				break
			}
		}
	}
	return stored
}

// firstSeq is the lowest seq of acked (not empty).
func firstSeq(acked []ackedEvent) uint64 {
	seq := acked[0].Seq
	for _, ev := range acked {
		seq = min(seq, ev.Seq)
	}
	return seq
}

// logReport is how a log read after a crash compares with the acks.
type logReport struct {
	last    uint64       // the highest stored seq
	gaps    []uint64     // seqs from the first acknowledged to last that are not stored
	missing []ackedEvent // acknowledged, not stored
	changed []string     // acknowledged, stored otherwise
	dups    []string     // the same event data stored at more than one seq
}

func compareLog(stored map[uint64]protocol.Event, acked []ackedEvent) logReport {
	var r logReport
	seen := make(map[string]uint64, len(stored))
	for seq, ev := range stored {
		r.last = max(r.last, seq)
		// Every load event's data is unique (cycle, client, i).
		if other, dup := seen[string(ev.Data)]; dup {
			r.dups = append(r.dups, fmt.Sprintf("seqs %d and %d: %s", min(seq, other), max(seq, other), first([]byte(ev.Data), 60)))
		}
		seen[string(ev.Data)] = seq
	}
	for seq := firstSeq(acked); seq < r.last; seq++ {
		if _, ok := stored[seq]; !ok {
			r.gaps = append(r.gaps, seq)
		}
	}
	for _, ev := range acked {
		got, ok := stored[ev.Seq]
		if !ok {
			r.missing = append(r.missing, ev)
			continue
		}
		if diff := sameEvent(got, ev); diff != "" {
			r.changed = append(r.changed, fmt.Sprintf("seq %d: %s", ev.Seq, diff))
		}
	}
	return r
}

func (r logReport) lost() bool { return len(r.gaps)+len(r.missing)+len(r.changed)+len(r.dups) > 0 }

func (r logReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "last stored seq %d; %d gaps %v; %d acknowledged events missing", r.last, len(r.gaps), first(r.gaps, 10), len(r.missing))
	if len(r.missing) > 0 {
		lo, hi := r.missing[0].Seq, r.missing[0].Seq
		for _, ev := range r.missing {
			lo, hi = min(lo, ev.Seq), max(hi, ev.Seq)
		}
		fmt.Fprintf(&b, " (seqs %d..%d, e.g. %d %s/%s ce-id %q)", lo, hi, r.missing[0].Seq, r.missing[0].Aggregate, r.missing[0].ID, r.missing[0].CEID)
	}
	fmt.Fprintf(&b, "; %d stored otherwise %v; %d stored twice %v", len(r.changed), first(r.changed, 5), len(r.dups), first(r.dups, 5))
	return b.String()
}

func first[T any](s []T, n int) []T { return s[:min(n, len(s))] }

// checkAcked fails t unless every acknowledged event is stored as it was
// sent, at its seq, and the log has no gap from the first of them on. It
// returns the last seq.
func checkAcked(t testing.TB, nc *nats.Conn, acked []ackedEvent) uint64 {
	t.Helper()
	r := compareLog(readStoredLog(t, nc, firstSeq(acked)), acked)
	if r.lost() {
		t.Errorf("acknowledged appends lost: %v", r)
	}

	return r.last
}

// checkRetries retries acknowledged appends with a ce-id (every 25th, and
// the last ones, the likeliest to be lost): each must be answered as a
// duplicate at its first seq.
func checkRetries(t testing.TB, nc *nats.Conn, acked []ackedEvent) {
	t.Helper()
	retried, bad := 0, 0
	for i, ev := range acked {
		if ev.CEID == "" || (i%25 != 0 && i < len(acked)-40) {
			continue
		}
		retried++
		r, err := sendAppend(nc, ev)
		if err != nil || !r.Duplicate || r.Seq != ev.Seq {
			if bad++; bad <= 5 {
				t.Errorf("retry of %s (seq %d): got %+v, %v; want duplicate at seq %d", ev.CEID, ev.Seq, r, err, ev.Seq)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d retries not answered as duplicates", bad, retried)
	}
}

// checkAcceptsAppends appends a new event: it must follow the last seq.
func checkAcceptsAppends(t testing.TB, nc *nats.Conn, last uint64) {
	t.Helper()
	ev := ackedEvent{Aggregate: "order", ID: "after-crash", Type: "ItemAdded", Data: []byte(`{"after":"crash"}`)}
	r, err := sendAppend(nc, ev)
	if err != nil {
		t.Fatalf("append after restart: %v", err)
	}
	if r.Seq != last+1 || r.Duplicate {
		t.Errorf("append after restart: got seq %d (duplicate %v), want %d", r.Seq, r.Duplicate, last+1)
	}
}
