package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

const benchContract = `kind: EventType
name: OrderPlaced
aggregate: order
version: 1
schema:
  type: object
  required: [customer, total]
  properties:
    customer: {type: string}
    email: {type: string}
    total: {type: number, minimum: 0}
    currency: {type: string}
    items: {type: array}
`

// runAppends runs the append scenarios on a fresh node in one durability mode.
func runAppends(ctx context.Context, o Options, durability string, want func(string) bool) ([]Result, error) {
	names := []string{"append-single-" + durability, "append-pipelined-" + durability, "append-batch100-" + durability}
	if len(o.Only) > 0 && !slices.ContainsFunc(names, func(n string) bool { return slices.Contains(o.Only, n) }) {
		return nil, nil
	}
	e, err := startEnv(ctx, o, durability)
	if err != nil {
		return nil, err
	}
	defer e.stop(true)
	rawConn := e.nc // os mode: the raw figures on the node's own server
	if durability == node.DurabilityFsync {
		raw, err := startRaw()
		if err != nil {
			return nil, err
		}
		defer raw.stop()
		rawConn = raw.nc
	}
	js, err := prepareAppends(ctx, o, e, rawConn)
	if err != nil {
		return nil, err
	}
	var results []Result
	if want(names[0]) {
		r, err := appendSingle(ctx, o, e, js, names[0])
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	total := o.Sizes.Pipelined
	var rawRate float64
	// The pipelined and batch scenarios share one raw figure, measured once
	// if either runs.
	if want(names[1]) || want(names[2]) {
		rawRate, err = rawAsyncRate(js, durability, total)
		if err != nil {
			return nil, err
		}
	}
	if want(names[1]) {
		r, err := appendPipelined(o, e, durability, total, rawRate, names[1])
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	if want(names[2]) {
		r, err := appendBatches(o, e, durability, total, rawRate, names[2])
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}

// prepareAppends applies the bench contract and creates, on the server of
// raw, the RAW stream the raw figures publish to, with the node's dedup
// window so that message ids cost the same on both sides.
func prepareAppends(ctx context.Context, o Options, e *env, raw *nats.Conn) (jetstream.JetStream, error) {
	if _, err := e.c.Apply([]byte(benchContract), false); err != nil {
		return nil, err
	}
	js, err := jetstream.New(raw, jetstream.WithPublishAsyncMaxPending(o.Sizes.InFlight))
	if err != nil {
		return nil, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"},
		Storage: jetstream.FileStorage, Duplicates: node.DefaultDedupWindow}); err != nil {
		return nil, fmt.Errorf("raw stream: %w", err)
	}
	return js, nil
}

// appendSingle times one-at-a-time appends against JetStream sync publishes,
// alternately, so that drift on a shared machine falls on both alike.
func appendSingle(ctx context.Context, o Options, e *env, js jetstream.JetStream, name string) (Result, error) {
	dm, raw, err := timeAlternately(o.Sizes.Single, func(i int) error {
		_, err := e.c.Append("order", "o-"+strconv.Itoa(i%1000), "OrderPlaced", payload(i), client.AppendOptions{})
		return err
	}, func(i int) error {
		_, err := js.Publish(ctx, "raw.order.o-"+strconv.Itoa(i%1000)+".OrderPlaced", payload(i))
		return err
	})
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: name, Value: micros(percentile(dm, 50)), Unit: "µs p50", Raw: micros(percentile(raw, 50)), Target: "p50 ratio <= 1.5",
		Note: fmt.Sprintf("p99 %.0f µs, raw p99 %.0f µs; raw: JetStream sync publish", micros(percentile(dm, 99)), micros(percentile(raw, 99)))}
	r.Ratio = r.Value / r.Raw
	r.check(true, 1.5, r.Ratio)
	return r, nil
}

// rawAsyncRate publishes total events to the RAW stream asynchronously,
// with message ids, and returns events/s: the raw figure of both the
// pipelined and the batch scenarios.
func rawAsyncRate(js jetstream.JetStream, durability string, total int) (float64, error) {
	t0 := time.Now()
	for i := range total {
		m := nats.NewMsg("raw.order.o-" + strconv.Itoa(i%1000) + ".OrderPlaced")
		m.Header.Set(jetstream.MsgIDHeader, durability+"-"+strconv.Itoa(i))
		m.Data = payload(i)
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return 0, errors.New("raw async publish did not complete")
	}
	return float64(total) / time.Since(t0).Seconds(), nil
}

// appendPipelined sends total single-event appends with InFlight requests
// unanswered and compares events/s with rawRate.
func appendPipelined(o Options, e *env, durability string, total int, rawRate float64, name string) (Result, error) {
	el, err := pipeline(e.nc, total, o.Sizes.InFlight, func(i int) *nats.Msg {
		m := nats.NewMsg(protocol.SubjectAppend + ".order.p-" + strconv.Itoa(i%1000))
		m.Header.Set(protocol.HeaderType, "OrderPlaced")
		m.Header.Set(protocol.HeaderID, durability+"-p-"+strconv.Itoa(i))
		m.Data = payload(i)
		return m
	})
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: name, Value: float64(total) / el.Seconds(), Unit: "events/s", Raw: rawRate, Target: "ratio >= 0.7",
		Note: fmt.Sprintf("%d requests in flight; raw: JetStream async publish with msg ids", o.Sizes.InFlight)}
	r.Ratio = r.Value / r.Raw
	r.check(false, 0.7, r.Ratio)
	return r, nil
}

// appendBatches sends total events as atomic batches of BatchSize, 8 in
// flight, and compares events/s with rawRate.
func appendBatches(o Options, e *env, durability string, total int, rawRate float64, name string) (Result, error) {
	bs := o.Sizes.BatchSize
	batches := total / bs
	el, err := pipeline(e.nc, batches, 8, func(i int) *nats.Msg {
		evs := make([]json.RawMessage, bs)
		for j := range evs {
			evs[j] = fmt.Appendf(nil, `{"type":"OrderPlaced","id":"%s-b-%d-%d","data":%s}`, durability, i, j, payload(i*bs+j))
		}
		m := nats.NewMsg(protocol.SubjectAppend + ".order.b-" + strconv.Itoa(i))
		m.Header.Set(protocol.HeaderContentType, protocol.ContentTypeBatch)
		m.Data, _ = json.Marshal(evs)
		return m
	})
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: name, Value: float64(batches*bs) / el.Seconds(), Unit: "events/s", Raw: rawRate, Target: "ratio >= 1.0",
		Note: fmt.Sprintf("atomic batches of %d, 8 in flight; raw: JetStream async publish", bs)}
	r.Ratio = r.Value / r.Raw
	r.check(false, 1.0, r.Ratio)
	return r, nil
}

// timeEach calls fn n times and returns the sorted latencies.
func timeEach(n int, fn func(i int) error) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	for i := range n {
		t0 := time.Now()
		if err := fn(i); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	return lat, nil
}

// timeAlternately calls a and b n times each, in turn, and returns their
// sorted latencies.
func timeAlternately(n int, a, b func(i int) error) (la, lb []time.Duration, err error) {
	la, lb = make([]time.Duration, n), make([]time.Duration, n)
	for i := range n {
		for _, x := range []struct {
			fn  func(int) error
			lat []time.Duration
		}{{a, la}, {b, lb}} {
			t0 := time.Now()
			if err := x.fn(i); err != nil {
				return nil, nil, err
			}
			x.lat[i] = time.Since(t0)
		}
	}
	slices.Sort(la)
	slices.Sort(lb)
	return la, lb, nil
}

// pipeline sends total requests built by build with at most inflight
// unanswered, and returns the time until the last reply. An error reply
// stops it.
func pipeline(nc *nats.Conn, total, inflight int, build func(i int) *nats.Msg) (time.Duration, error) {
	inbox := nc.NewRespInbox()
	sem := make(chan struct{}, inflight)
	var (
		done     sync.WaitGroup
		mu       sync.Mutex
		replyErr error
	)
	firstErr := func() error {
		mu.Lock()
		defer mu.Unlock()
		return replyErr
	}
	done.Add(total)
	sub, err := nc.Subscribe(inbox+".*", func(m *nats.Msg) {
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			mu.Lock()
			if replyErr == nil {
				replyErr = fmt.Errorf("%s %s", code, m.Header.Get(micro.ErrorHeader))
			}
			mu.Unlock()
		}
		<-sem
		done.Done()
	})
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	t0 := time.Now()
	for i := range total {
		if err := firstErr(); err != nil {
			return 0, err
		}
		sem <- struct{}{}
		m := build(i)
		m.Reply = inbox + "." + strconv.Itoa(i)
		if err := nc.PublishMsg(m); err != nil {
			return 0, err
		}
	}
	wait := make(chan struct{})
	go func() { done.Wait(); close(wait) }()
	select {
	case <-wait:
	case <-time.After(2 * time.Minute):
		return 0, errors.New("replies did not all come back")
	}
	if err := firstErr(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
