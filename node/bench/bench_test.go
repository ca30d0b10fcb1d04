package bench

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
)

func TestEveryScenarioProducesAFigure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	results, err := Run(ctx, Options{Sizes: Tiny})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"append-single-os", "append-pipelined-os", "append-batch100-os",
		"append-single-fsync", "append-pipelined-fsync", "append-batch100-fsync", "fsync-vs-os-pipelined",
		"rebuild", "live-projection", "query-get", "query-list", "memory", "start-up", "append-pipelined-auth", "link",
		"cluster-append-pipelined-fsync", "cluster-append-pipelined-os", "cluster-memory", "cluster-query-get", "failover",
	}
	for _, n := range ladderClients {
		want = append(want, ladderName(node.DurabilityOS, n), ladderName(node.DurabilityFsync, n))
		switch n {
		case 8:
			want = append(want, ladderName(node.DurabilityFsync, n)+"-vs-os", ladderName(node.DurabilityFsync, n)+"-p50")
		case 64:
			want = append(want, ladderName(node.DurabilityFsync, n)+"-vs-os")
		}
	}
	if len(results) != len(want) {
		t.Fatalf("got %d results, want %d", len(results), len(want))
	}
	for i, r := range results {
		if r.Name != want[i] {
			t.Fatalf("result %d is %s, want %s", i, r.Name, want[i])
		}
		if r.Value <= 0 || r.Unit == "" {
			t.Fatalf("%s: got value %v %q, want a positive figure", r.Name, r.Value, r.Unit)
		}
		if r.Target != "" && r.Pass == nil {
			t.Fatalf("%s has a target but no verdict", r.Name)
		}
		if r.Raw > 0 && r.Ratio <= 0 {
			t.Fatalf("%s: raw %v but ratio %v", r.Name, r.Raw, r.Ratio)
		}
	}
	// The JSON form parses back.
	b, err := json.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	var back []Result
	if err := json.Unmarshal(b, &back); err != nil || len(back) != len(results) {
		t.Fatalf("JSON round trip: %v", err)
	}
}

func TestClusterGroupSelectsEveryClusterScenario(t *testing.T) {
	got := expandGroups([]string{"link", ClusterGroup})
	want := append([]string{"link"}, ClusterScenarios...)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := expandGroups([]string{"failover"}); !slices.Equal(got, []string{"failover"}) {
		t.Fatalf("got %v, want [failover]", got)
	}
}

func TestASlowAppendPathIsCaught(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := Run(ctx, Options{Sizes: Tiny, Only: []string{"append-single-os"}, Durabilities: []string{node.DurabilityOS},
		AppendDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Pass == nil {
		t.Fatalf("got %+v, want one verdict", results)
	}
	if r := results[0]; *r.Pass || r.Ratio < 5 {
		t.Fatalf("a 5 ms delay in the append path passed: %+v", r)
	}
}

// BenchmarkScenario runs the scenarios named in DATAMESH_BENCH_ONLY at the
// quick size, for profiling: go test -run '^$' -bench Scenario -cpuprofile cpu.out ./node/bench/
func BenchmarkScenario(b *testing.B) {
	only := strings.Split(os.Getenv("DATAMESH_BENCH_ONLY"), ",")
	for i := 0; i < b.N; i++ {
		results, err := Run(context.Background(), Options{Sizes: Quick, Only: only, Durabilities: []string{node.DurabilityOS}})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range results {
			b.Logf("%s: %.2f %s (raw %.2f, ratio %.2f)", r.Name, r.Value, r.Unit, r.Raw, r.Ratio)
		}
	}
}
