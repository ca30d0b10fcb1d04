package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tidwall/buntdb"

	"github.com/datamesh/datamesh/projection"
)

// clusterQueryGet mirrors query-get on the cluster: gets through the client
// on a follower, answered by any server of the API's queue group, against
// a NATS queue group with a member on each server doing a BuntDB get.
func clusterQueryGet(ctx context.Context, o Options, cl *cluster, events int) (Result, error) {
	if _, err := cl.c.Apply(fmt.Appendf(nil, rebuildSpec, clusterProj), false); err != nil {
		return Result{}, err
	}
	if err := waitEveryServerLive(ctx, cl, clusterProj, uint64(events)); err != nil {
		return Result{}, err
	}
	rawDB := filepath.Join(cl.dirs[cl.via], "raw.db")
	if _, err := rawBuntRate(rawDB, events); err != nil {
		return Result{}, err
	}
	stopRaw, err := rawGetGroup(cl, rawDB)
	if err != nil {
		return Result{}, err
	}
	defer stopRaw()
	docs := min(events, 1000)
	dm, raw, err := timeAlternately(o.Sizes.Single, func(i int) error {
		key := "p-" + strconv.Itoa(i%docs)
		_, err := cl.c.Query(clusterProj, projection.Query{Get: &key})
		return err
	}, func(i int) error {
		_, err := cl.nc.Request("bench.rawget", []byte("o-"+strconv.Itoa(i%events)), 5*time.Second)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: ClusterQueryGet, Value: micros(percentile(dm, 50)), Unit: "µs p50", Raw: micros(percentile(raw, 50)),
		Target: fmt.Sprintf("p50 ratio <= %.1f", clusterGetRatio),
		Note: fmt.Sprintf("p99 %.0f µs, raw p99 %.0f µs; client on a follower; the API is a queue group: any server answers (2 in 3 across a route); raw: a NATS queue group with a member on each server doing a BuntDB get",
			micros(percentile(dm, 99)), micros(percentile(raw, 99)))}
	r.Ratio = r.Value / r.Raw
	r.check(true, clusterGetRatio, r.Ratio)
	return r, nil
}

// rawGetGroup subscribes, on each server, a member of the queue group
// bench.rawget that answers with the BuntDB record of the request's key.
func rawGetGroup(cl *cluster, path string) (func(), error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, err
	}
	var (
		conns    []*nats.Conn
		answered = make([]atomic.Int64, len(cl.nodes))
	)
	stop := func() {
		for _, nc := range conns {
			nc.Close()
		}
		db.Close()
	}
	for i, n := range cl.nodes {
		nc, err := n.Connect()
		if err != nil {
			stop()
			return nil, err
		}
		conns = append(conns, nc)
		if _, err := nc.QueueSubscribe("bench.rawget", "bench", func(m *nats.Msg) {
			var v string
			_ = db.View(func(tx *buntdb.Tx) error {
				v, _ = tx.Get("d:" + string(m.Data))
				return nil
			})
			answered[i].Add(1)
			_ = m.Respond([]byte(v))
		}); err != nil {
			stop()
			return nil, err
		}
		if err := nc.Flush(); err != nil {
			stop()
			return nil, err
		}
	}
	// Measure once every member has answered: the routes have carried the
	// remote members' interest to the client's server.
	for range 1000 {
		if allAnswered(answered) {
			return stop, nil
		}
		if _, err := cl.nc.Request("bench.rawget", []byte("o-0"), 5*time.Second); err != nil {
			stop()
			return nil, err
		}
	}
	stop()
	return nil, errors.New("raw queue group: a member never answered")
}

func allAnswered(counts []atomic.Int64) bool {
	for i := range counts {
		if counts[i].Load() == 0 {
			return false
		}
	}
	return true
}

// waitEveryServerLive polls until each server's projection name is live at
// applied >= seq.
func waitEveryServerLive(ctx context.Context, cl *cluster, name string, seq uint64) error {
	for _, n := range cl.nodes {
		for !liveAt(n.ProjectionStatuses(ctx), name, seq) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("projection %s not live on every server: %w", name, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func liveAt(sts []projection.Status, name string, seq uint64) bool {
	return slices.ContainsFunc(sts, func(s projection.Status) bool {
		return s.Name == name && s.State == projection.StateLive && s.Applied >= seq
	})
}
