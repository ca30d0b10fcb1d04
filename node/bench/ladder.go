package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/protocol"
)

// LadderScenario is the name of the append-concurrency scenario.
const LadderScenario = "append-concurrency"

// ladderClients are the steps of the ladder: each client sends one append
// and waits for its answer before the next, as a request handler does.
var ladderClients = []int{1, 2, 4, 8, 16, 32, 64}

// step is one rung of the ladder in one mode.
type step struct {
	clients  int
	rate     float64 // events/s
	p50, p99 time.Duration
}

// runLadder measures the ladder in both modes, on a fresh node each, and
// returns one result per step and mode, then the targets that compare the
// modes.
func runLadder(ctx context.Context, o Options) ([]Result, error) {
	steps := map[string][]step{}
	for _, d := range []string{node.DurabilityOS, node.DurabilityFsync} {
		s, err := ladder(ctx, o, d)
		if err != nil {
			return nil, fmt.Errorf("%s mode: %w", d, err)
		}
		steps[d] = s
	}
	return ladderResults(steps[node.DurabilityOS], steps[node.DurabilityFsync]), nil
}

func ladder(ctx context.Context, o Options, durability string) ([]step, error) {
	e, err := startEnv(ctx, o, durability)
	if err != nil {
		return nil, err
	}
	defer e.stop(true)
	if _, err := e.c.Apply([]byte(benchContract), false); err != nil {
		return nil, err
	}
	conns := make([]*nats.Conn, slices.Max(ladderClients))
	for i := range conns {
		if conns[i], err = nats.Connect(e.node.ClientURL(), nats.Name("datamesh-bench-ladder")); err != nil {
			return nil, err
		}
		defer conns[i].Close()
	}
	// Warm up: the first appends open files and fill caches.
	if _, err := climb(conns[:8], durability+"-warm", 200*time.Millisecond); err != nil {
		return nil, err
	}
	secs := time.Duration(o.Sizes.LadderSecs * float64(time.Second))
	var out []step
	for _, n := range ladderClients {
		s, err := climb(conns[:n], durability+"-"+strconv.Itoa(n), secs)
		if err != nil {
			return nil, fmt.Errorf("%d clients: %w", n, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// climb runs one client per connection for d, each appending one event at a
// time, and returns the step's figures.
func climb(conns []*nats.Conn, tag string, d time.Duration) (step, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
	)
	deadline := time.Now().Add(d)
	for c, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := appendUntil(nc, tag+"-"+strconv.Itoa(c), deadline)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, l...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return step{}, errs[0]
	}
	slices.Sort(lat)
	return step{clients: len(conns), rate: float64(len(lat)) / d.Seconds(), p50: percentile(lat, 50), p99: percentile(lat, 99)}, nil
}

// appendUntil appends one event at a time on nc until deadline and returns
// the latencies.
func appendUntil(nc *nats.Conn, client string, deadline time.Time) ([]time.Duration, error) {
	var lat []time.Duration
	for i := 0; time.Now().Before(deadline); i++ {
		m := nats.NewMsg(protocol.SubjectAppend + ".order.c-" + client + "-" + strconv.Itoa(i%100))
		m.Header.Set(protocol.HeaderType, "OrderPlaced")
		m.Data = payload(i)
		t0 := time.Now()
		resp, err := nc.RequestMsg(m, 10*time.Second)
		if err != nil {
			return lat, err
		}
		if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
			return lat, fmt.Errorf("%s %s", code, resp.Header.Get(micro.ErrorHeader))
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// Targets of the ladder (issue 18): in fsync mode, throughput never falls
// from one step to the next, and at 8 and 64 clients it keeps up with a
// share of os mode, with a p50 near one fsync at 8.
const (
	ladderStepRatio = 0.9
	ladderAt8VsOS   = 0.4
	ladderAt8P50    = 1.5 // ms
	ladderAt64VsOS  = 0.5
)

func ladderResults(osSteps, fsSteps []step) []Result {
	var out []Result
	for i, s := range osSteps {
		out = append(out, Result{Name: ladderName(node.DurabilityOS, s.clients), Value: s.rate, Unit: "events/s",
			Note: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", ms(s.p50), ms(s.p99))})
		f := fsSteps[i]
		r := Result{Name: ladderName(node.DurabilityFsync, f.clients), Value: f.rate, Unit: "events/s",
			Note: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms; os mode %.0f events/s (%.2f×)", ms(f.p50), ms(f.p99), s.rate, f.rate/s.rate)}
		if i > 0 {
			r.Raw, r.Ratio, r.Target = fsSteps[i-1].rate, f.rate/fsSteps[i-1].rate, fmt.Sprintf("ratio >= %.1f", ladderStepRatio)
			r.Note += "; raw: the previous step"
			r.check(false, ladderStepRatio, r.Ratio)
		}
		out = append(out, r)
		switch f.clients {
		case 8:
			out = append(out, vsOS(f, s, ladderAt8VsOS))
			p := Result{Name: ladderName(node.DurabilityFsync, 8) + "-p50", Value: ms(f.p50), Unit: "ms p50",
				Target: fmt.Sprintf("<= %.1f ms", ladderAt8P50)}
			p.check(true, ladderAt8P50, p.Value)
			out = append(out, p)
		case 64:
			out = append(out, vsOS(f, s, ladderAt64VsOS))
		}
	}
	return out
}

func vsOS(f, s step, bound float64) Result {
	r := Result{Name: ladderName(node.DurabilityFsync, f.clients) + "-vs-os", Value: f.rate, Unit: "events/s", Raw: s.rate,
		Ratio: f.rate / s.rate, Target: fmt.Sprintf("ratio >= %.1f", bound), Note: "raw: os mode, same step, same run"}
	r.check(false, bound, r.Ratio)
	return r
}

func ladderName(durability string, clients int) string {
	return LadderScenario + "-" + durability + "-" + strconv.Itoa(clients)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
