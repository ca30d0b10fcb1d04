package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tidwall/buntdb"
	"golang.org/x/time/rate"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

const rebuildSpec = `kind: Projection
name: %s
version: 1
source: {aggregates: [order], types: [OrderPlaced, ItemAdded]}
key: event.id
handlers:
  OrderPlaced: "{customer: data.customer, status: 'placed', total: data.total, count: 0}"
  ItemAdded: "merge(doc, {total: doc.total + data.price, count: doc.count + 1})"
indexes:
  by_customer: customer
  by_total: {field: total, type: number}
`

const docsSpec = `kind: Projection
name: docs
version: 1
source: {aggregates: [order], types: [OrderPlaced, ItemAdded]}
key: event.event_id
handlers:
  OrderPlaced: "data"
  ItemAdded: "data"
`

const liveSpec = `kind: Projection
name: live
version: 1
source: {aggregates: [live], types: [OrderPlaced]}
key: event.id
handlers:
  OrderPlaced: "{customer: data.customer, total: data.total}"
indexes:
  by_customer: customer
`

// fillLog appends events in aggregates of 10 (an OrderPlaced and 9
// ItemAdded), pipelined, and returns the number of events.
func fillLog(nc *nats.Conn, events int) (int, error) {
	aggs := events / 10
	_, err := pipeline(nc, aggs, 32, func(i int) *nats.Msg {
		var sb strings.Builder
		sb.WriteString(`[{"type":"OrderPlaced","data":`)
		sb.Write(payload(i))
		sb.WriteString(`}`)
		for j := 1; j < 10; j++ {
			fmt.Fprintf(&sb, `,{"type":"ItemAdded","data":{"sku":"sku-%08d","qty":1,"price":%d.5}}`, i*10+j, j)
		}
		sb.WriteString(`]`)
		m := nats.NewMsg(protocol.SubjectAppend + ".order.o-" + strconv.Itoa(i))
		m.Header.Set(protocol.HeaderContentType, protocol.ContentTypeBatch)
		m.Data = []byte(sb.String())
		return m
	})
	return aggs * 10, err
}

// waitLive polls until name's active version is live at applied >= seq.
func waitLive(ctx context.Context, c *client.Client, name string, seq uint64) (projection.Status, error) {
	for {
		r, err := c.Projections()
		if err != nil {
			return projection.Status{}, err
		}
		for _, s := range r.Projections {
			if s.Name != name {
				continue
			}
			if s.State == projection.StateFailed {
				return s, fmt.Errorf("projection %s failed: %s", name, s.LastError)
			}
			if s.State == projection.StateLive && s.Applied >= seq {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return projection.Status{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runProjections runs the rebuild, live, query, memory and start-up
// scenarios on one node.
func runProjections(ctx context.Context, o Options, want func(string) bool) ([]Result, error) {
	e, err := startEnv(ctx, o, node.DurabilityOS)
	if err != nil {
		return nil, err
	}
	// A closure: the start-up scenario replaces e with a restarted node.
	defer func() { e.stop(true) }()
	var results []Result
	events, err := fillLog(e.nc, o.Sizes.Rebuild)
	if err != nil {
		return nil, fmt.Errorf("fill log: %w", err)
	}
	head := uint64(events)
	rawDB := filepath.Join(e.dir, "raw.db")

	if !o.selected("rebuild") && (o.selected("query-get") || o.selected("query-list")) {
		if err := prepareQueries(ctx, e, rawDB, events); err != nil {
			return nil, err
		}
	}
	if want("rebuild") {
		r, err := rebuild(ctx, e, rawDB, events)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	if want("live-projection") {
		r, err := liveLatency(ctx, e, o)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	if want("query-get") {
		r, err := queryGet(ctx, e, o, rawDB, events)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	if want("query-list") {
		r, err := queryList(e, o)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	if want("memory") {
		r, err := memory(ctx, e, head)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	if want("start-up") {
		var r Result
		e, r, err = startUp(ctx, o, e, events)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}

// prepareQueries builds what the query scenarios read when the rebuild
// scenario, which would otherwise build it, does not run: the rebuild
// projection and the raw BuntDB file.
func prepareQueries(ctx context.Context, e *env, rawDB string, events int) error {
	if _, err := e.c.Apply(fmt.Appendf(nil, rebuildSpec, "rebuild"), false); err != nil {
		return err
	}
	if _, err := waitLive(ctx, e.c, "rebuild", uint64(events)); err != nil {
		return err
	}
	if _, err := rawBuntRate(rawDB, events); err != nil {
		return err
	}
	return nil
}

// rebuild times a projection with two indexes folding the whole log, against
// BuntDB writes of as many records.
func rebuild(ctx context.Context, e *env, rawDB string, events int) (Result, error) {
	rawRate, err := rawBuntRate(rawDB, events)
	if err != nil {
		return Result{}, err
	}
	stopProfile, err := profileCPU(os.Getenv("DATAMESH_BENCH_REBUILD_PROFILE"))
	if err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	if _, err := e.c.Apply(fmt.Appendf(nil, rebuildSpec, "rebuild"), false); err != nil {
		return Result{}, err
	}
	if _, err := waitLive(ctx, e.c, "rebuild", uint64(events)); err != nil {
		return Result{}, err
	}
	stopProfile()
	r := Result{Name: "rebuild", Value: float64(events) / time.Since(t0).Seconds(), Unit: "events/s", Raw: rawRate, Target: "ratio >= 0.6",
		Note: fmt.Sprintf("%d events, 2 indexes, expression handlers; raw: BuntDB sets of ~200 B in transactions of 1000 with 1 JSON index", events)}
	r.Ratio = r.Value / r.Raw
	r.check(false, 0.6, r.Ratio)
	return r, nil
}

// queryList times pages of 100 documents read through the rebuild
// projection's number index.
func queryList(e *env, o Options) (Result, error) {
	lat, err := timeEach(o.Sizes.ListPages, func(i int) error {
		_, err := e.c.Query("rebuild", projection.Query{List: &projection.Filter{Index: "by_total", Gte: json.RawMessage(strconv.Itoa(i % 500)), Limit: 100}})
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Name: "query-list", Value: micros(percentile(lat, 50)), Unit: "µs p50",
		Note: fmt.Sprintf("pages of 100 documents by a number index; p99 %.0f µs", micros(percentile(lat, 99)))}, nil
}

// startUp stops e's node, keeping its data, and times a new node on the same
// directory until every projection is live again. It returns the env that
// is now e's to stop: the restarted one once it has started, else e.
func startUp(ctx context.Context, o Options, e *env, events int) (*env, Result, error) {
	cfg := node.DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.Listen, cfg.HTTP, cfg.LeafListen = "bench", e.dir, "127.0.0.1:-1", "", ""
	e.stop(false)
	t0 := time.Now()
	e2, err := startEnvAt(ctx, o, cfg)
	if err != nil {
		return e, Result{}, err
	}
	r, err := e2.c.Projections()
	if err != nil {
		return e2, Result{}, err
	}
	for _, s := range r.Projections {
		if _, err := waitLive(ctx, e2.c, s.Name, s.Applied); err != nil {
			return e2, Result{}, err
		}
	}
	docs := 0
	for _, s := range r.Projections {
		docs += s.Documents
	}
	return e2, Result{Name: "start-up", Value: time.Since(t0).Seconds(), Unit: "s",
		Note: fmt.Sprintf("to ready and every projection live: %d events, %d projection documents", events, docs)}, nil
}

// rawBuntRate writes n ~200 B JSON records into a fresh BuntDB file with
// one JSON index, in transactions of 1000, and returns records/s.
func rawBuntRate(path string, n int) (float64, error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := db.CreateIndex("by_customer", "d:*", buntdb.IndexJSON("customer")); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for i := 0; i < n; i += 1000 {
		err := db.Update(func(tx *buntdb.Tx) error {
			for j := i; j < min(i+1000, n); j++ {
				if _, _, err := tx.Set("d:o-"+strconv.Itoa(j), string(payload(j)), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// liveLatency appends at a steady rate and measures, for each event, the
// time from the append request to a query with its seq as min_seq answering.
func liveLatency(ctx context.Context, e *env, o Options) (Result, error) {
	if _, err := e.c.Apply([]byte(liveSpec), false); err != nil {
		return Result{}, err
	}
	total := int(float64(o.Sizes.LiveRate) * o.Sizes.LiveSecs)
	lim := rate.NewLimiter(rate.Limit(o.Sizes.LiveRate), 1)
	const workers = 16
	lats := make([][]time.Duration, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				if err := lim.Wait(ctx); err != nil {
					errs <- err
					return
				}
				t0 := time.Now()
				key := "l-" + strconv.Itoa(i)
				r, err := e.c.Append("live", key, "OrderPlaced", payload(i), client.AppendOptions{})
				if err == nil {
					_, err = e.c.Query("live", projection.Query{Get: &key, MinSeq: r.Seq})
				}
				if err != nil {
					errs <- err
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sorted := all
	slices.Sort(sorted)
	p99 := percentile(sorted, 99)
	r := Result{Name: "live-projection", Value: float64(p99.Microseconds()) / 1000, Unit: "ms p99", Target: "p99 <= 5 ms",
		Note: fmt.Sprintf("append -> queryable at %d events/s; p50 %.2f ms", o.Sizes.LiveRate, float64(percentile(sorted, 50).Microseconds())/1000)}
	r.check(true, 5, r.Value)
	return r, nil
}

// queryGet compares dm.query gets with a bare NATS request-reply service
// doing a BuntDB get, both answered inside the node's process.
func queryGet(ctx context.Context, e *env, o Options, rawDB string, records int) (Result, error) {
	db, err := buntdb.Open(rawDB)
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	inproc, err := e.node.Connect()
	if err != nil {
		return Result{}, err
	}
	defer inproc.Close()
	sub, err := inproc.Subscribe("bench.rawget", func(m *nats.Msg) {
		var v string
		_ = db.View(func(tx *buntdb.Tx) error {
			v, _ = tx.Get("d:" + string(m.Data))
			return nil
		})
		_ = m.Respond([]byte(v))
	})
	if err != nil {
		return Result{}, err
	}
	defer sub.Unsubscribe()
	if err := inproc.Flush(); err != nil {
		return Result{}, err
	}
	aggs := records / 10
	// Alternate the two, so that drift on a shared machine (GC after the
	// load, a noisy neighbour) falls on both alike.
	dm, raw, err := timeAlternately(o.Sizes.Single, func(i int) error {
		key := "o-" + strconv.Itoa(i%aggs)
		_, err := e.c.Query("rebuild", projection.Query{Get: &key})
		return err
	}, func(i int) error {
		_, err := e.nc.Request("bench.rawget", []byte("o-"+strconv.Itoa(i%records)), 5*time.Second)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: "query-get", Value: micros(percentile(dm, 50)), Unit: "µs p50", Raw: micros(percentile(raw, 50)), Target: "p50 ratio <= 1.3",
		Note: fmt.Sprintf("p99 %.0f µs, raw p99 %.0f µs; raw: NATS request-reply doing a BuntDB get", micros(percentile(dm, 99)), micros(percentile(raw, 99)))}
	r.Ratio = r.Value / r.Raw
	r.check(true, 1.3, r.Ratio)
	return r, nil
}

// memory builds a projection with one ~200 B document per event and reports
// the process's resident memory growth per million documents.
func memory(ctx context.Context, e *env, head uint64) (Result, error) {
	before := settledRSS()
	if _, err := e.c.Apply([]byte(docsSpec), false); err != nil {
		return Result{}, err
	}
	st, err := waitLive(ctx, e.c, "docs", head)
	if err != nil {
		return Result{}, err
	}
	after := rss()
	perMillion := float64(after-before) / float64(max(st.Documents, 1)) * 1e6 / (1 << 20)
	return Result{Name: "memory", Value: perMillion, Unit: "MiB per 1M docs",
		Note: fmt.Sprintf("RSS growth while a projection of %d documents (~200 B) built; includes BuntDB's in-memory copy", st.Documents)}, nil
}

// settledRSS returns rss once two readings in a row agree within 1 MiB (at
// most ten readings): nodes closed by earlier scenarios give memory back to
// the OS for a while after, which would read as negative growth.
func settledRSS() int64 {
	last := rss()
	for range 10 {
		now := rss()
		if abs(now-last) < 1<<20 {
			return now
		}
		last = now
	}
	return last
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// rss returns the process's resident set size after a GC.
func rss() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// profileCPU writes a CPU profile to path until the returned func is
// called; with an empty path it does nothing. The rebuild scenario uses it
// (DATAMESH_BENCH_REBUILD_PROFILE=cpu.out) to profile the rebuild alone,
// without the log fill before it.
func profileCPU(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
