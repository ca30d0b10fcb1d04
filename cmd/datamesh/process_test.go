package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

// runMainEnv, set to 1, makes the test binary behave as the datamesh
// command: the process tests re-execute os.Args[0] to get real `datamesh
// node` processes they can kill -9, without building the command first.
const runMainEnv = "DATAMESH_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) != "1" {
		os.Exit(m.Run())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The test holds this process's stdin open; EOF means the test is gone
	// (it ended, or was killed), and the node must not outlive it.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	err := run(ctx, os.Args[1:], strings.NewReader(""), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		printError(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

const (
	procSecret   = "process-test-secret"
	procDeadline = 60 * time.Second
)

// nodeProcess is a `datamesh node` running in a process of its own, from a
// config file that stays the same across restarts (same data, same ports).
type nodeProcess struct {
	t      testing.TB
	name   string
	listen string
	leaf   string // leafnode address, "" when the node has none
	config string
	log    string // the node's stderr, every run appended

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result, once exited is closed
	nc     *nats.Conn
	c      *client.Client
	// server: one server of a cluster, ready once it answers for itself
	// (any server of the cluster answers the other requests).
	server bool
}

// newNodeProcess writes name's config file and starts the node.
func newNodeProcess(t *testing.T, name, leaf string, peers ...string) *nodeProcess {
	t.Helper()
	dir := t.TempDir()
	p := &nodeProcess{
		t:      t,
		name:   name,
		listen: freePort(t),
		leaf:   leaf,
		config: filepath.Join(dir, "node.yaml"),
		log:    filepath.Join(dir, "node.log"),
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "name: %s\ndata: %s\nlisten: %q\nhttp: \"\"\nleaf_listen: %q\ndurability: fsync\npeers:\n",
		name, filepath.Join(dir, "data"), p.listen, leaf)
	for _, peer := range peers {
		fmt.Fprintf(&cfg, "  %s:\n    secret: %s\n", peer, procSecret)
	}
	if err := os.WriteFile(p.config, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir's own cleanup, so it runs first: the process
	// is gone before its data directory is removed.
	t.Cleanup(func() {
		if p.cmd != nil {
			p.kill()
		}
		if t.Failed() {
			t.Logf("log of node %s:\n%s", p.name, p.logTail(8000))
		}
	})
	p.start()
	return p
}

// start runs the node and waits until its API answers.
func (p *nodeProcess) start() {
	p.t.Helper()
	p.launch()
	p.waitReady()
}

// launch starts the node's process, without waiting for it.
func (p *nodeProcess) launch() {
	p.t.Helper()
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	fmt.Fprintf(logFile, "=== test: starting node %s at %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(os.Args[0], "node", "--config", p.config)
	cmd.Env = append(childEnv(), runMainEnv+"=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if _, err := cmd.StdinPipe(); err != nil { // closed by Wait
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start node %s: %v", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		p.err = cmd.Wait()
		close(exited)
	}(p.exited)
}

// waitReady waits until the node's API answers.
func (p *nodeProcess) waitReady() {
	p.t.Helper()
	var last error
	err := nodetest.Poll(context.Background(), procDeadline, 50*time.Millisecond, func() (bool, error) {
		select {
		case <-p.exited:
			return false, fmt.Errorf("exited before it was ready: %v", p.err)
		default:
		}
		last = p.connect()
		return last == nil, nil
	})
	if err != nil {
		p.t.Fatalf("node %s not ready after %v: %v (%v)\n%s", p.name, procDeadline, err, last, p.logTail(4000))
	}
}

// connect opens a client connection and checks that the node's API
// answers; the API subscribes last in Node.Start, so the node is ready.
func (p *nodeProcess) connect() error {
	nc, err := nats.Connect("nats://"+p.listen, nats.Name("process-test"), nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	c := client.New(nc).WithTimeout(10 * time.Second)
	if _, err := c.WithTimeout(time.Second).Catalog(); err != nil {
		nc.Close()
		return err
	}
	if p.server {
		if _, err := c.WithTimeout(time.Second).ServerProjections(p.name); err != nil {
			nc.Close()
			return err
		}
	}
	p.nc, p.c = nc, c
	return nil
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *nodeProcess) kill() {
	p.t.Helper()
	if p.nc != nil {
		p.nc.Close()
		p.nc, p.c = nil, nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("kill node %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(procDeadline):
		p.t.Fatalf("node %s still running %v after SIGKILL", p.name, procDeadline)
	}
	p.cmd = nil
}

// logTail returns the last n bytes of the node's log.
func (p *nodeProcess) logTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = append([]byte("...\n"), b[len(b)-n:]...)
	}
	return string(b)
}

func (p *nodeProcess) apply(yaml string) {
	p.t.Helper()
	if _, err := p.c.Apply([]byte(yaml), false); err != nil {
		p.t.Fatalf("apply on %s: %v\n%s", p.name, err, yaml)
	}
}

func (p *nodeProcess) link(name string) protocol.LinkStatus {
	p.t.Helper()
	st, err := p.c.Mesh()
	if err != nil {
		p.t.Fatalf("mesh status of %s: %v", p.name, err)
	}
	for _, l := range st.Links {
		if l.Name == name {
			return l
		}
	}
	p.t.Fatalf("no link %s on %s: %+v", name, p.name, st.Links)
	return protocol.LinkStatus{}
}

// childEnv is this process's environment without DATAMESH_ variables: they
// would override the config file (env beats file).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// waitUntil polls fn every 10 ms until it returns nil; after timeout it
// fails with fn's last error.
func waitUntil(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	nodetest.CheckFor(t, timeout, 10*time.Millisecond, fn)
}

// appendOrders appends orders o-<from> to o-<from+n-1>, one at a time.
func appendOrders(c *client.Client, from, n int) error {
	for i := from; i < from+n; i++ {
		data := fmt.Sprintf(`{"customer":"c%d","total":%d}`, i, 10+i)
		if _, err := c.Append("order", fmt.Sprintf("o-%d", i), "OrderPlaced", []byte(data), client.AppendOptions{}); err != nil {
			return fmt.Errorf("append order o-%d: %w", i, err)
		}
	}
	return nil
}

// readAll reads every event of aggregate on c, in log order.
func readAll(c *client.Client, aggregate string) ([]protocol.Event, error) {
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

// TestMeshProcesses runs the owner and the recipient of a link as separate
// `datamesh node` processes and kills each with SIGKILL while the link
// imports: the recipient ends with every owner event exactly once, in the
// owner's order.
func TestMeshProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills node processes")
	}
	start := time.Now()
	orders := newNodeProcess(t, "orders", freePort(t), "billing")
	billing := newNodeProcess(t, "billing", "", "orders")
	orders.apply("kind: Export\nname: all-orders\nto: [billing]\naggregates: [order]\n")
	billing.apply(fmt.Sprintf("kind: Link\nname: orders-in\npeer: orders\nurl: nats-leaf://%s\nexport: all-orders\n", orders.leaf))
	t.Logf("nodes up and resources applied in %v", time.Since(start).Round(time.Millisecond))

	if err := appendOrders(orders.c, 0, 1500); err != nil {
		t.Fatal(err)
	}
	// kill -9 of the owner once the link imports.
	var l protocol.LinkStatus
	waitUntil(t, procDeadline, func() error {
		if l = billing.link("orders-in"); l.Imported == 0 {
			return fmt.Errorf("nothing imported yet: %+v", l)
		}
		return nil
	})
	orders.kill()
	t.Logf("killed orders %v after start; link was %+v", time.Since(start).Round(time.Millisecond), l)
	orders.start()

	// kill -9 of the recipient while it imports, with the owner appending:
	// first the link resumes, or the owner's appends all land while it
	// reconnects and the recipient is killed with nothing left to import.
	waitUntil(t, procDeadline, func() error {
		if l = billing.link("orders-in"); !l.Connected || l.OriginSeq < 1500 {
			return fmt.Errorf("link not resumed after the owner's restart: %+v", l)
		}
		return nil
	})
	t.Logf("link resumed %v after start", time.Since(start).Round(time.Millisecond))
	appended := make(chan error, 1)
	go func() { appended <- appendOrders(orders.c, 1500, 500) }()
	waitUntil(t, procDeadline, func() error {
		if l = billing.link("orders-in"); l.OriginSeq <= 1500 {
			return fmt.Errorf("link at origin seq %d, want > 1500: %+v", l.OriginSeq, l)
		}
		return nil
	})
	billing.kill()
	t.Logf("killed billing %v after start; link was %+v", time.Since(start).Round(time.Millisecond), l)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err := appendOrders(orders.c, 2000, 500); err != nil {
		t.Fatal(err)
	}
	billing.start()

	owned, err := readAll(orders.c, "order")
	if err != nil {
		t.Fatalf("read orders on the owner: %v", err)
	}
	if len(owned) != 2500 {
		t.Fatalf("owner has %d order events, want 2500 (acknowledged appends lost by kill -9)", len(owned))
	}
	head := owned[len(owned)-1].Seq
	// Caught up: the link says it imported the owner's last event, and the
	// recipient's log holds at least as many events as the owner's.
	var imported []protocol.Event
	waitUntil(t, procDeadline, func() error {
		var err error
		if imported, err = readAll(billing.c, "order"); err != nil {
			return err
		}
		l := billing.link("orders-in")
		if len(imported) < len(owned) || l.OriginSeq < head {
			return fmt.Errorf("billing has %d of %d order events; link %+v", len(imported), len(owned), l)
		}
		return nil
	})
	t.Logf("caught up %v after start; link %+v", time.Since(start).Round(time.Millisecond), billing.link("orders-in"))
	checkImportedOnce(t, owned, imported)
}

// checkImportedOnce asserts that imported are the owner's events, each
// once, in the owner's order, with their ids and data unchanged.
func checkImportedOnce(t testing.TB, owned, imported []protocol.Event) {
	t.Helper()
	bySeq := make(map[uint64]protocol.Event, len(owned))
	for _, ev := range owned {
		bySeq[ev.Seq] = ev
	}
	seen := make(map[uint64]int, len(imported))
	var last uint64
	var problems []string
	for i, ev := range imported {
		if ev.Origin == nil {
			t.Fatalf("imported event %d (local seq %d) has no origin", i, ev.Seq)
		}
		o := ev.Origin
		if o.Node != "orders" || o.Link != "orders-in" {
			problems = append(problems, fmt.Sprintf("local seq %d: origin node %q link %q, want orders, orders-in", ev.Seq, o.Node, o.Link))
		}
		if n, dup := seen[o.Seq]; dup {
			problems = append(problems, fmt.Sprintf("origin seq %d imported twice: local seqs %d and %d", o.Seq, imported[n].Seq, ev.Seq))
		}
		seen[o.Seq] = i
		if o.Seq <= last {
			problems = append(problems, fmt.Sprintf("origin seq %d (local seq %d) after origin seq %d: out of the owner's order", o.Seq, ev.Seq, last))
		}
		last = o.Seq
		want, ok := bySeq[o.Seq]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("origin seq %d (local seq %d) is no order event of the owner", o.Seq, ev.Seq))
		case ev.AggregateID != want.AggregateID || ev.Type != want.Type || o.ID != want.ID || !bytes.Equal(ev.Data, want.Data):
			problems = append(problems, fmt.Sprintf("origin seq %d: got %s %s id %s %s, want %s %s id %s %s",
				o.Seq, ev.AggregateID, ev.Type, o.ID, ev.Data, want.AggregateID, want.Type, want.ID, want.Data))
		}
	}
	for _, ev := range owned {
		if _, ok := seen[ev.Seq]; !ok {
			problems = append(problems, fmt.Sprintf("owner seq %d (%s) never imported", ev.Seq, ev.AggregateID))
		}
	}
	if len(imported) != len(owned) {
		problems = append(problems, fmt.Sprintf("got %d imported events, want %d", len(imported), len(owned)))
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		t.Fatalf("the link did not import every owner event exactly once, in order:\n%s", strings.Join(problems, "\n"))
	}
}
