package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
)

// TestClusterAppendProfile profiles the cluster append figures, each side
// on its own: set DATAMESH_CLUSTER_PROFILE to a directory and it writes
// raw.cpu and dm.cpu there (DATAMESH_CLUSTER_DURABILITY: os or fsync,
// fsync by default), and logs the events per raft append entry and which
// server answered the appends.
//
//	DATAMESH_CLUSTER_PROFILE=/tmp/prof go test -run TestClusterAppendProfile -v ./node/bench/
//	go tool pprof -top /tmp/prof/dm.cpu
func TestClusterAppendProfile(t *testing.T) {
	dir := os.Getenv("DATAMESH_CLUSTER_PROFILE")
	if dir == "" {
		t.Skip("set DATAMESH_CLUSTER_PROFILE to a directory to profile the cluster appends")
	}
	durability := os.Getenv("DATAMESH_CLUSTER_DURABILITY")
	if durability == "" {
		durability = node.DurabilityFsync
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := Options{Sizes: Quick}
	o.Logger = hclog.NewNullLogger()
	cl, err := startCluster(ctx, o, durability, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.stop()
	if _, err := cl.c.Apply([]byte(benchContract), false); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(cl.nc, jetstream.WithPublishAsyncMaxPending(o.Sizes.InFlight))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eventlog.EnsureStream(ctx, js, jetstream.StreamConfig{Name: rawStream, Subjects: []string{"raw.>"},
		Storage: jetstream.FileStorage, Replicas: clusterServers, Duplicates: node.DefaultDedupWindow}); err != nil {
		t.Fatal(err)
	}
	where, leader, err := sameLeader(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("client on %s; raw stream %s", serverName(cl.via), where)
	total := o.Sizes.Cluster
	prefix, how := appendPrefix(cl)
	t.Logf("%s", how)
	profile := func(name string, fn func() (float64, error)) {
		before := raftIndexes(cl, leader)
		f, err := os.Create(filepath.Join(dir, name+".cpu"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		rate, err := fn()
		pprof.StopCPUProfile()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %.0f events/s, %.1f events per raft append entry", name, rate,
			perEntry(total, entriesSince(before, raftIndexes(cl, leader))))
	}
	for round := range 2 {
		r := strconv.Itoa(round)
		profile("raw"+r, func() (float64, error) { return rawAsyncRate(js, "prof-"+r, total) })
		profile("dm"+r, func() (float64, error) {
			el, err := pipeline(cl.nc, total, o.Sizes.InFlight, func(i int) *nats.Msg {
				m := nats.NewMsg(prefix + ".order.p-" + strconv.Itoa(i%1000))
				m.Header.Set(protocol.HeaderType, "OrderPlaced")
				m.Header.Set(protocol.HeaderID, "prof-"+r+"-"+strconv.Itoa(i))
				m.Data = payload(i)
				return m
			})
			return float64(total) / el.Seconds(), err
		})
	}
	t.Logf("append requests answered by server: %s", appendsByServer(t, cl))
}

// appendsByServer asks every member of the API for its append endpoint's
// request count.
func appendsByServer(t *testing.T, cl *cluster) string {
	inbox := nats.NewInbox()
	sub, err := cl.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := cl.nc.PublishRequest("$SRV.STATS."+protocol.ServiceName, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []string
	for range clusterServers {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			break
		}
		var st struct {
			Metadata  map[string]string `json:"metadata"`
			Endpoints []struct {
				Name     string `json:"name"`
				Requests int    `json:"num_requests"`
			} `json:"endpoints"`
			ID string `json:"id"`
		}
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		for _, e := range st.Endpoints {
			if e.Name == "append" {
				out = append(out, st.ID[:6]+"="+strconv.Itoa(e.Requests))
			}
		}
	}
	return strings.Join(out, " ")
}
