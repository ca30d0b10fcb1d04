package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
)

// ackTimes records when the node acknowledged appends.
type ackTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *ackTimes) add() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, time.Now())
}

func (a *ackTimes) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times)
}

// longestGap returns the longest time between two acknowledgements and
// when it began.
func (a *ackTimes) longestGap() (gap time.Duration, from time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	slices.SortFunc(a.times, func(x, y time.Time) int { return x.Compare(y) })
	for i := 1; i < len(a.times); i++ {
		if d := a.times[i].Sub(a.times[i-1]); d > gap {
			gap, from = d, a.times[i-1]
		}
	}
	return gap, from
}

// waitAcks polls until a has n acknowledgements.
func waitAcks(ctx context.Context, a *ackTimes, n int) error {
	for a.count() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d appends acknowledged, want %d: %w", a.count(), n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// failover appends from clients connected to the two servers that do not
// lead the event stream, with ce-ids, each retrying an append that was not
// answered; it cuts the leader off from the others at once (routeproxy.Proxies:
// to them, its SIGKILL) and reports the longest time between two
// acknowledgements.
func failover(ctx context.Context, o Options, cl *cluster) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	leader, err := streamLeader(ctx, cl.inproc, node.DefaultStreamName)
	if err != nil {
		return Result{}, err
	}
	var urls []string
	for i, n := range cl.nodes {
		if i != leader {
			urls = append(urls, n.ClientURL())
		}
	}
	clients := o.Sizes.FailoverClients
	a := &ackTimes{}
	stop := make(chan struct{})
	errs := make(chan error, clients)
	var (
		wg    sync.WaitGroup
		conns []*nats.Conn
	)
	defer func() {
		close(stop)
		wg.Wait()
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for g := range clients {
		nc, err := nats.Connect(urls[g%len(urls)], nats.Name("datamesh-bench-failover"))
		if err != nil {
			return Result{}, err
		}
		conns = append(conns, nc)
		c := client.New(nc).WithTimeout(failoverTimeout)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := appendUntilStopped(ctx, c, "f"+strconv.Itoa(g), a, stop); err != nil {
				errs <- err
			}
		}()
	}
	// Stop the leader once appends flow, and wait until as many more have
	// been acknowledged after it.
	before := 20 * clients
	if err := waitAcks(ctx, a, before); err != nil {
		return Result{}, err
	}
	n := a.count()
	stopped := time.Now()
	cl.quiet.Store(true)
	if err := cl.proxies.Cut(leader, cl.nodes[leader].Server().ID()); err != nil {
		return Result{}, err
	}
	if err := waitAcks(ctx, a, n+before); err != nil {
		return Result{}, fmt.Errorf("appends did not resume: %w", err)
	}
	select {
	case err := <-errs:
		return Result{}, err
	default:
	}
	gap, from := a.longestGap()
	return Result{Name: FailoverScenario, Value: gap.Seconds(), Unit: "s without an ack",
		Note: fmt.Sprintf("os mode; leader %s cut off from the other two servers after %d acks (the gap began %+.2f s from the cut); %d clients with ce-ids on the other two servers, request timeout %v, retrying what was not answered",
			serverName(leader), n, from.Sub(stopped).Seconds(), clients, failoverTimeout)}, nil
}

// appendUntilStopped appends orders one at a time until stop closes,
// retrying each with its ce-id until the node acknowledges it, as a client
// whose reply did not come does.
func appendUntilStopped(ctx context.Context, c *client.Client, tag string, a *ackTimes, stop <-chan struct{}) error {
	for i := 0; ; i++ {
		id := tag + "-" + strconv.Itoa(i)
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			_, err := c.Append("order", id, "OrderPlaced", payload(i), client.AppendOptions{ID: "ce-" + id})
			if err == nil {
				a.add()
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("append %s: %w", id, err)
			}
			time.Sleep(20 * time.Millisecond) // a retry's pause, not a wait for a condition
		}
	}
}
