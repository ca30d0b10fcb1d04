package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/routeproxy"
)

// The cluster scenarios run on three in-process servers of one node
// (docs/cluster.md), on loopback, every stream R3.
const (
	ClusterAppendFsync = "cluster-append-pipelined-fsync"
	ClusterAppendOS    = "cluster-append-pipelined-os"
	ClusterMemory      = "cluster-memory"
	ClusterQueryGet    = "cluster-query-get"
	FailoverScenario   = "failover"
	// ClusterGroup, given to --only, selects every cluster scenario.
	ClusterGroup = "cluster"
)

// ClusterScenarios are the cluster scenarios in the order they report.
var ClusterScenarios = []string{ClusterAppendFsync, ClusterAppendOS, ClusterMemory, ClusterQueryGet, FailoverScenario}

const (
	clusterServers = 3
	// clusterAppendRatio is the target of the pipelined appends against raw
	// JetStream async publishes to an R3 stream.
	clusterAppendRatio = 0.5
	// clusterGetRatio is query-get's target, which cluster-query-get keeps.
	clusterGetRatio = 1.3
	// failoverTimeout is the failover clients' request timeout: a request
	// the server cut off had taken is retried after it.
	failoverTimeout = 2 * time.Second
	clusterProj     = "cluster"
	rawStream       = "RAW3"
	// clusterRounds is how many turns the append figures take.
	clusterRounds = 2
)

// expandGroups replaces ClusterGroup in only by the cluster scenarios.
func expandGroups(only []string) []string {
	if !slices.Contains(only, ClusterGroup) {
		return only
	}
	out := slices.DeleteFunc(slices.Clone(only), func(n string) bool { return n == ClusterGroup })
	return append(out, ClusterScenarios...)
}

// cluster is the three servers of one node, and a TCP client on a server
// that does not lead the event stream (what it measures then crosses a
// route, as in most deployments).
type cluster struct {
	nodes   []*node.Node
	proxies *routeproxy.Proxies // nil unless the cluster can lose a server
	// quiet silences the servers' logs (see errorsOnly).
	quiet  atomic.Bool
	dirs   []string
	via    int        // the server nc is connected to
	nc     *nats.Conn // TCP, as a service connects
	c      *client.Client
	inproc *nats.Conn // the node's own rights, on server via
}

// startCluster starts three servers in durability mode, all at once (each
// waits for a quorum), and connects the client. With cuttable, their
// routes go through proxies that can cut one server off.
func startCluster(ctx context.Context, o Options, durability string, cuttable bool) (cl *cluster, err error) {
	cl = &cluster{}
	defer func() {
		if err != nil {
			cl.stop()
		}
	}()
	routes := make([]string, clusterServers)
	listens := make([]string, clusterServers)
	for i := range listens {
		if listens[i], err = freeLoopback(); err != nil {
			return nil, err
		}
		routes[i] = "nats-route://" + listens[i]
	}
	if cuttable {
		if cl.proxies, err = routeproxy.Start(listens); err != nil {
			return nil, err
		}
		for i, a := range cl.proxies.Addrs() {
			routes[i] = "nats-route://" + a
		}
	}
	errs := make([]error, clusterServers)
	var wg sync.WaitGroup
	for i := range clusterServers {
		dir, err := tempDir()
		if err != nil {
			return nil, err
		}
		cl.dirs = append(cl.dirs, dir)
		cfg := benchConfig(durability)
		cfg.DataDir, cfg.ServerName = dir, serverName(i)
		cfg.Cluster = &node.Cluster{Listen: listens[i], Routes: routes}
		n, err := node.New(cfg, errorsOnly{o.Logger.With("server", cfg.ServerName), &cl.quiet})
		if err != nil {
			return nil, err
		}
		if o.AppendDelay > 0 {
			if err := n.Use(delayAppends(o.AppendDelay)); err != nil {
				return nil, err
			}
		}
		cl.nodes = append(cl.nodes, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Start(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cl, cl.connect(ctx)
}

func serverName(i int) string { return "s" + strconv.Itoa(i) }

// freeLoopback returns a loopback address with a port free now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// connect connects the clients to a server that does not lead the event
// stream.
func (cl *cluster) connect(ctx context.Context) error {
	in, err := cl.nodes[0].Connect()
	if err != nil {
		return err
	}
	defer in.Close()
	leader, err := streamLeader(ctx, in, node.DefaultStreamName)
	if err != nil {
		return err
	}
	cl.via = (leader + 1) % clusterServers
	if cl.nc, err = nats.Connect(cl.nodes[cl.via].ClientURL(), nats.Name("datamesh-bench-cluster")); err != nil {
		return err
	}
	cl.c = client.New(cl.nc)
	cl.inproc, err = cl.nodes[cl.via].Connect()
	return err
}

// streamLeader asks JetStream which server leads stream and returns its
// index, waiting while there is none.
func streamLeader(ctx context.Context, nc *nats.Conn, stream string) (int, error) {
	for {
		m, err := nc.Request("$JS.API.STREAM.INFO."+stream, nil, 5*time.Second)
		if err == nil {
			var info struct {
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			}
			if err := json.Unmarshal(m.Data, &info); err == nil && info.Cluster.Leader != "" {
				for i := range clusterServers {
					if serverName(i) == info.Cluster.Leader {
						return i, nil
					}
				}
				return 0, fmt.Errorf("stream %s: leader %q is none of the cluster's servers", stream, info.Cluster.Leader)
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("stream %s has no leader: %w", stream, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop closes the clients and every server, all at once, and deletes
// their data.
func (cl *cluster) stop() {
	cl.quiet.Store(true)
	for _, nc := range []*nats.Conn{cl.nc, cl.inproc} {
		if nc != nil {
			nc.Close()
		}
	}
	var wg sync.WaitGroup
	for _, n := range cl.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Close()
		}()
	}
	wg.Wait()
	if cl.proxies != nil {
		cl.proxies.Close()
	}
	for _, d := range cl.dirs {
		os.RemoveAll(d)
	}
}

// runCluster runs the cluster scenarios, each group on a cluster of its
// own: the fsync appends; the os appends, memory and queries; failover.
func runCluster(ctx context.Context, o Options, want func(string) bool) ([]Result, error) {
	var results []Result
	if want(ClusterAppendFsync) {
		r, err := onCluster(ctx, o, node.DurabilityFsync, false, func(cl *cluster) (*Result, error) {
			return clusterAppend(ctx, o, cl, node.DurabilityFsync, true)
		})
		if err != nil {
			return results, fmt.Errorf("%s: %w", ClusterAppendFsync, err)
		}
		results = append(results, *r)
	}
	if slices.ContainsFunc(ClusterScenarios[1:4], o.selected) {
		rs, err := runClusterOS(ctx, o, want)
		results = append(results, rs...)
		if err != nil {
			return results, err
		}
	}
	if want(FailoverScenario) {
		r, err := onCluster(ctx, o, node.DurabilityOS, true, func(cl *cluster) (*Result, error) {
			if _, err := cl.c.Apply([]byte(benchContract), false); err != nil {
				return nil, err
			}
			r, err := failover(ctx, o, cl)
			return &r, err
		})
		if err != nil {
			return results, fmt.Errorf("%s: %w", FailoverScenario, err)
		}
		results = append(results, *r)
	}
	return results, nil
}

// onCluster runs fn on a cluster started for it.
func onCluster(ctx context.Context, o Options, durability string, cuttable bool, fn func(*cluster) (*Result, error)) (*Result, error) {
	cl, err := startCluster(ctx, o, durability, cuttable)
	if err != nil {
		return nil, fmt.Errorf("start a cluster: %w", err)
	}
	defer cl.stop()
	return fn(cl)
}

// runClusterOS runs the os-mode appends, then memory and queries on the
// same cluster. The appends run for memory and queries too: memory
// measures the servers holding them, and the queries read them.
func runClusterOS(ctx context.Context, o Options, want func(string) bool) ([]Result, error) {
	var results []Result
	before := settledRSS()
	cl, err := startCluster(ctx, o, node.DurabilityOS, false)
	if err != nil {
		return nil, fmt.Errorf("%s: start a cluster: %w", ClusterAppendOS, err)
	}
	defer cl.stop()
	r, err := clusterAppend(ctx, o, cl, node.DurabilityOS, want(ClusterAppendOS))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ClusterAppendOS, err)
	}
	if r != nil {
		results = append(results, *r)
	}
	if want(ClusterMemory) {
		results = append(results, clusterMemory(before, o.Sizes.Cluster, r != nil))
	}
	if want(ClusterQueryGet) {
		r, err := clusterQueryGet(ctx, o, cl, o.Sizes.Cluster)
		if err != nil {
			return results, fmt.Errorf("%s: %w", ClusterQueryGet, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// clusterAppend sends o.Sizes.Cluster pipelined single appends with ce-ids
// through cl's client and, if measure, as many JetStream async publishes
// with msg ids to an R3 stream of the same cluster through the same
// server, and compares their rates. It returns nil if !measure.
func clusterAppend(ctx context.Context, o Options, cl *cluster, durability string, measure bool) (*Result, error) {
	if _, err := cl.c.Apply([]byte(benchContract), false); err != nil {
		return nil, err
	}
	total := o.Sizes.Cluster
	prefix, how := appendPrefix(cl)
	build := func(i int) *nats.Msg {
		m := nats.NewMsg(prefix + ".order.p-" + strconv.Itoa(i%1000))
		m.Header.Set(protocol.HeaderType, "OrderPlaced")
		m.Header.Set(protocol.HeaderID, "cluster-"+durability+"-p-"+strconv.Itoa(i))
		m.Data = payload(i)
		return m
	}
	if !measure {
		_, err := pipeline(cl.nc, total, o.Sizes.InFlight, build)
		return nil, err
	}
	js, err := jetstream.New(cl.nc, jetstream.WithPublishAsyncMaxPending(o.Sizes.InFlight))
	if err != nil {
		return nil, err
	}
	// EnsureStream: nats-server 2.15.2 may not answer a stream create in a
	// cluster that has just formed (docs/cluster.md).
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := eventlog.EnsureStream(sctx, js, jetstream.StreamConfig{Name: rawStream, Subjects: []string{"raw.>"},
		Storage: jetstream.FileStorage, Replicas: clusterServers, Duplicates: node.DefaultDedupWindow}); err != nil {
		return nil, fmt.Errorf("raw stream: %w", err)
	}
	where, leader, err := sameLeader(sctx, cl)
	if err != nil {
		return nil, err
	}
	// In turns, so that drift on a shared machine falls on both alike.
	var dmSecs, rawSecs float64
	var dmEntries, rawEntries uint64
	half := total / clusterRounds
	for round := range clusterRounds {
		before := raftIndexes(cl, leader)
		rawRate, err := rawAsyncRate(js, "cluster-"+durability+"-"+strconv.Itoa(round), half)
		if err != nil {
			return nil, fmt.Errorf("raw: %w", err)
		}
		rawSecs += float64(half) / rawRate
		mid := raftIndexes(cl, leader)
		rawEntries += entriesSince(before, mid)
		el, err := pipeline(cl.nc, half, o.Sizes.InFlight, func(i int) *nats.Msg { return build(round*half + i) })
		if err != nil {
			return nil, err
		}
		dmSecs += el.Seconds()
		dmEntries += entriesSince(mid, raftIndexes(cl, leader))
	}
	n := float64(half * clusterRounds)
	r := &Result{Name: "cluster-append-pipelined-" + durability, Value: n / dmSecs, Unit: "events/s", Raw: n / rawSecs,
		Target: fmt.Sprintf("ratio >= %.1f", clusterAppendRatio),
		Note: fmt.Sprintf("3 servers, R3, client on a follower; %s; %d in flight, %d turns each; raw: JetStream async publishes with msg ids to an R3 stream (%s); events per raft append entry %.0f, raw %.0f",
			how, o.Sizes.InFlight, clusterRounds, where, perEntry(half*clusterRounds, dmEntries), perEntry(half*clusterRounds, rawEntries))}
	if durability == node.DurabilityFsync {
		r.Note += "; sync_always on every server"
	}
	r.Ratio = r.Value / r.Raw
	r.check(false, clusterAppendRatio, r.Ratio)
	return r, nil
}

// sameLeader moves the raw stream's leader to the server that leads the
// event stream, so that both figures cross the same routes, and says
// where the raw leader is and which server leads the event stream.
func sameLeader(ctx context.Context, cl *cluster) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events, err := streamLeader(ctx, cl.inproc, node.DefaultStreamName)
	if err != nil {
		return "", 0, err
	}
	req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, serverName(events))
	for {
		raw, err := streamLeader(ctx, cl.inproc, rawStream)
		if err != nil {
			return "", 0, err
		}
		if raw == events {
			return "its leader on the event stream's leader", events, nil
		}
		if _, err := cl.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+rawStream, req, 5*time.Second); err != nil {
			return "", 0, fmt.Errorf("move the raw stream's leader: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Sprintf("its leader on %s, the event stream's on %s", serverName(raw), serverName(events)), events, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clusterMemory reports the growth of the process's resident memory since
// before the cluster started: three servers holding the appended events
// (each its own replica; raw ones too if the append figure was measured)
// and the node's parts on each.
func clusterMemory(before int64, events int, withRaw bool) Result {
	after := rss()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	held := fmt.Sprintf("%d events", events)
	if withRaw {
		held += fmt.Sprintf(" and %d raw ones", events/clusterRounds*clusterRounds)
	}
	return Result{Name: ClusterMemory, Value: float64(after-before) / (1 << 20), Unit: "MiB RSS",
		Note: fmt.Sprintf("RSS growth of the process while 3 in-process servers run and hold %s, R3; Go heap in use %.0f MiB",
			held, float64(ms.HeapInuse)/(1<<20))}
}

// errorsOnly passes a logger's errors on and drops the rest: the servers
// of a bench cluster warn about routes to servers not up yet, and to the
// one the failover scenario cuts off, on purpose.
// Once quiet, it drops everything: servers that close, or lose one of
// theirs, report their routes broken.
type errorsOnly struct {
	hclog.Logger
	quiet *atomic.Bool
}

func (l errorsOnly) Log(level hclog.Level, msg string, args ...any) {
	if level >= hclog.Error && !l.quiet.Load() {
		l.Logger.Log(level, msg, args...)
	}
}
func (errorsOnly) Trace(string, ...any) {}
func (errorsOnly) Debug(string, ...any) {}
func (errorsOnly) Info(string, ...any)  {}
func (errorsOnly) Warn(string, ...any)  {}
func (errorsOnly) IsTrace() bool        { return false }
func (errorsOnly) IsDebug() bool        { return false }
func (errorsOnly) IsInfo() bool         { return false }
func (errorsOnly) IsWarn() bool         { return false }
func (l errorsOnly) With(args ...any) hclog.Logger {
	return errorsOnly{l.Logger.With(args...), l.quiet}
}
func (l errorsOnly) Named(name string) hclog.Logger {
	return errorsOnly{l.Logger.Named(name), l.quiet}
}
func (l errorsOnly) ResetNamed(name string) hclog.Logger {
	return errorsOnly{l.Logger.ResetNamed(name), l.quiet}
}
