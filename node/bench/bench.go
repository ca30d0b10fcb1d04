package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
)

// Sizes of one run.
type Sizes struct {
	Single    int // one-at-a-time appends and queries
	Pipelined int // events of the pipelined and batch scenarios
	Rebuild   int // events replayed by the rebuild scenario
	LiveSecs  float64
	Documents int // documents of the memory scenario
	ListPages int
	InFlight  int
	LiveRate  int // events/s of the live projection scenario
	BatchSize int
	// LadderSecs is how long each step of append-concurrency runs.
	LadderSecs float64
	// Cluster is the events of each cluster append figure (and its raw).
	Cluster int
	// FailoverClients append while the failover scenario cuts a server off.
	FailoverClients int
}

// Reference is the default size; Quick finishes in well under a minute on
// two cores; Tiny is for the harness's own test.
var (
	Reference = Sizes{Single: 5000, Pipelined: 200_000, Rebuild: 1_000_000, LiveSecs: 5, Documents: 1_000_000, ListPages: 1000, InFlight: 256, LiveRate: 5000, BatchSize: 100, LadderSecs: 1.5,
		Cluster: 50_000, FailoverClients: 16}
	Quick = Sizes{Single: 1000, Pipelined: 30_000, Rebuild: 100_000, LiveSecs: 2, Documents: 100_000, ListPages: 300, InFlight: 256, LiveRate: 5000, BatchSize: 100, LadderSecs: 1,
		Cluster: 10_000, FailoverClients: 16}
	Tiny = Sizes{Single: 200, Pipelined: 2000, Rebuild: 5000, LiveSecs: 0.5, Documents: 2000, ListPages: 50, InFlight: 64, LiveRate: 1000, BatchSize: 100, LadderSecs: 0.2,
		Cluster: 300, FailoverClients: 4}
)

// Options configure a run.
type Options struct {
	Sizes Sizes
	// Only, if set, runs only the scenarios with these names.
	Only []string
	// Durabilities are the node modes the append scenarios run in.
	Durabilities []string
	// AppendDelay slows the node's append endpoint, through a middleware
	// (the harness's own test: a slow append path must be caught).
	AppendDelay time.Duration
	Logger      hclog.Logger
	// Progress, if set, is told each scenario's name as it starts.
	Progress func(name string)
}

// Result is one scenario's figures.
type Result struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Raw    float64 `json:"raw,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
	Target string  `json:"target,omitempty"`
	// Pass is nil when the scenario has no target ("reported").
	Pass *bool  `json:"pass,omitempty"`
	Note string `json:"note,omitempty"`
}

// check sets Pass from the ratio (or value) and a bound.
func (r *Result) check(atMost bool, bound float64, of float64) {
	ok := of >= bound
	if atMost {
		ok = of <= bound
	}
	r.Pass = &ok
}

// env is a running node and its clients for a group of scenarios.
type env struct {
	node *node.Node
	dir  string
	nc   *nats.Conn // a TCP client, as a service connects
	c    *client.Client
}

func startEnv(ctx context.Context, o Options, durability string) (*env, error) {
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	cfg := benchConfig(durability)
	cfg.DataDir = dir
	return startEnvAt(ctx, o, cfg)
}

func tempDir() (string, error) { return os.MkdirTemp("", "datamesh-bench-*") }

// benchConfig is a node on random loopback ports, without a data directory.
func benchConfig(durability string) node.Config {
	cfg := node.DefaultConfig()
	cfg.Name = "bench"
	cfg.Listen = "127.0.0.1:-1"
	// The HTTP port on, as deployed: the appends and queries measured
	// update the node's metrics (which are off without it).
	cfg.HTTP = "127.0.0.1:-1"
	cfg.LeafListen = ""
	cfg.Durability = durability
	return cfg
}

// startEnvAt starts a node with cfg and connects its client over TCP with
// opts (a service's credentials).
func startEnvAt(ctx context.Context, o Options, cfg node.Config, opts ...nats.Option) (*env, error) {
	n, err := node.New(cfg, o.Logger)
	if err != nil {
		return nil, err
	}
	if o.AppendDelay > 0 {
		if err := n.Use(delayAppends(o.AppendDelay)); err != nil {
			return nil, err
		}
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(n.ClientURL(), append([]nats.Option{nats.Name("datamesh-bench")}, opts...)...)
	if err != nil {
		n.Close()
		return nil, err
	}
	return &env{node: n, dir: cfg.DataDir, nc: nc, c: client.New(nc)}, nil
}

// stop closes the node; remove also deletes its data.
func (e *env) stop(remove bool) {
	e.nc.Close()
	e.node.Close()
	if remove {
		os.RemoveAll(e.dir)
	}
}

// selected reports whether scenario name is to run.
func (o Options) selected(name string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, name)
}

// Run runs every scenario and returns their results in order.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	o.Only = expandGroups(o.Only)
	if len(o.Durabilities) == 0 {
		o.Durabilities = []string{node.DurabilityOS, node.DurabilityFsync}
	}
	want := func(name string) bool {
		if !o.selected(name) {
			return false
		}
		if o.Progress != nil {
			o.Progress(name)
		}
		return true
	}
	var results []Result
	pipelined := map[string]float64{}
	for _, d := range o.Durabilities {
		rs, err := runAppends(ctx, o, d, want)
		if err != nil {
			return results, fmt.Errorf("append scenarios (%s): %w", d, err)
		}
		for _, r := range rs {
			if r.Name == "append-pipelined-"+d {
				pipelined[d] = r.Value
			}
		}
		results = append(results, rs...)
	}
	if os, fs := pipelined[node.DurabilityOS], pipelined[node.DurabilityFsync]; os > 0 && fs > 0 {
		r := Result{Name: "fsync-vs-os-pipelined", Value: fs, Unit: "events/s", Raw: os, Ratio: fs / os, Target: "ratio >= 0.5",
			Note: "raw: os-mode pipelined appends of the same run"}
		r.check(false, 0.5, r.Ratio)
		results = append(results, r)
	}
	projScenarios := []string{"rebuild", "live-projection", "query-get", "query-list", "memory", "start-up"}
	if len(o.Only) == 0 || slices.ContainsFunc(projScenarios, func(n string) bool { return slices.Contains(o.Only, n) }) {
		rs, err := runProjections(ctx, o, want)
		results = append(results, rs...)
		if err != nil {
			return results, fmt.Errorf("projection scenarios: %w", err)
		}
	}
	if want(AuthScenario) {
		r, err := runAuth(ctx, o)
		if err != nil {
			return results, fmt.Errorf("%s: %w", AuthScenario, err)
		}
		results = append(results, r)
	}
	if want("link") {
		r, err := runLink(ctx, o)
		if err != nil {
			return results, fmt.Errorf("link scenario: %w", err)
		}
		results = append(results, r)
	}
	rs, err := runCluster(ctx, o, want)
	results = append(results, rs...)
	if err != nil {
		return results, fmt.Errorf("cluster scenarios: %w", err)
	}
	// Last: its two nodes and 64 connections leave memory behind that the
	// memory scenario would see go back to the OS.
	if want(LadderScenario) {
		rs, err := runLadder(ctx, o)
		if err != nil {
			return results, fmt.Errorf("%s: %w", LadderScenario, err)
		}
		results = append(results, rs...)
	}
	return results, nil
}

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// payload is a realistic ~200 B order event.
func payload(i int) []byte {
	return fmt.Appendf(nil, `{"customer":"customer-%06d","email":"someone-%d@example.com","total":%d.45,"currency":"EUR","items":[{"sku":"sku-%08d","qty":2,"price":12.5}],"note":"leave at the door"}`,
		i%50000, i%977, i%1000, i)
}

// delayAppends is a middleware that sleeps before every append.
func delayAppends(d time.Duration) node.Middleware {
	return func(endpoint string, h micro.HandlerFunc) micro.HandlerFunc {
		if endpoint != "append" {
			return h
		}
		return func(req micro.Request) {
			time.Sleep(d)
			h(req)
		}
	}
}
