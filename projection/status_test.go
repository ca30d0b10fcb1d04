package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/projection"
)

// appendOther stores an event of another aggregate than the projections'.
func (l *testLog) appendOther(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		m := nats.NewMsg(fmt.Sprintf("%s.customer.c-%d.CustomerCreated", testPrefix, i))
		m.Header.Set("ce-type", "CustomerCreated")
		m.Header.Set("ce-id", fmt.Sprintf("c-%d-%d", i, time.Now().UnixNano()))
		m.Data = []byte(`{}`)
		if _, err := l.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// failing is a native folder that fails on an event whose data has "fail": true.
type failing struct{}

func (failing) Key(ev *projection.Event, _ any) (string, error) { return ev.ID, nil }
func (failing) Fold(_ *projection.Event, data any, _ map[string]any) (map[string]any, bool, error) {
	if d, _ := data.(map[string]any); d["fail"] == true {
		return nil, false, errors.New("refused")
	}
	return map[string]any{"seen": true}, false, nil
}

func status(t testing.TB, m *projection.Manager, name string) projection.Status {
	t.Helper()
	for _, s := range m.Statuses(context.Background()) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s", name)
	return projection.Status{}
}

// A version's progress counts the events of its own source: failed at the
// second of its three events it is a third done, however many events of
// other aggregates the log holds; live, it stays at 100% while other
// aggregates grow.
func TestStatusProgressCountsTheSource(t *testing.T) {
	l := startLog(t)
	first := l.append(t, "o-1", "OrderPlaced", `{}`)
	l.appendOther(t, 20)
	l.append(t, "o-2", "OrderPlaced", `{"fail":true}`)
	l.appendOther(t, 20)
	l.append(t, "o-3", "OrderPlaced", `{}`)
	g := gate{open: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(g.open) }) }
	m := startManager(t, l.managerConfig(t, t.TempDir(), newMemStore(),
		projection.Native{Spec: nativeSpec("failing"), Folder: failing{}},
		projection.Native{Spec: nativeSpec("slow"), Folder: g}))
	t.Cleanup(release)
	waitState(t, m, "failing", 1, projection.StateFailed)

	st := status(t, m, "failing")
	if st.Applied != first || st.LagEvents != 2 || math.Abs(st.Progress-1.0/3) > 1e-9 {
		t.Fatalf("failed at its 2nd of 3 events: got applied %d, lag %d, progress %.3f; want %d, 2, 0.333",
			st.Applied, st.LagEvents, st.Progress, first)
	}
	if st := status(t, m, "slow"); st.State != projection.StateBuilding || st.Progress != 0 || st.LagEvents != 3 {
		t.Fatalf("building, held at its 1st event: got %s, progress %.3f, lag %d; want building, 0, 3",
			st.State, st.Progress, st.LagEvents)
	}
	release()
	waitState(t, m, "slow", 1, projection.StateLive)
	l.appendOther(t, 50)
	if st := status(t, m, "slow"); st.Progress != 1 || st.LagEvents != 0 {
		t.Fatalf("live, its source idle while others grow: got progress %.3f, lag %d; want 1, 0", st.Progress, st.LagEvents)
	}
}

func TestQueryRefusesBoundsOfTheWrongType(t *testing.T) {
	spec := specVersion(t, 1, "")
	spec.Indexes["by_status"] = projection.IndexSpec{Field: "status", Type: "string"}
	spec.Indexes["by_any"] = projection.IndexSpec{Field: "status"} // no declared type
	for _, tc := range []struct {
		filter projection.Filter
		want   string
	}{
		{projection.Filter{Index: "by_total", Gte: json.RawMessage(`"abc"`)},
			`projection orders: index by_total has type number: gte "abc" is a string, not a number`},
		{projection.Filter{Index: "by_total", Gt: json.RawMessage(`1`), Lt: json.RawMessage(`true`)},
			`projection orders: index by_total has type number: lt true is a boolean, not a number`},
		{projection.Filter{Index: "by_status", Eq: json.RawMessage(`5`)},
			`projection orders: index by_status has type string: eq 5 is a number, not a string`},
		{projection.Filter{Index: "by_status", Lte: json.RawMessage(`null`)},
			`projection orders: index by_status has type string: lte null is null, not a string`},
		{projection.Filter{Index: "by_total", Gte: json.RawMessage(`10`), Lt: json.RawMessage(`50.5`)}, ""},
		{projection.Filter{Index: "by_status", Eq: json.RawMessage(`"placed"`)}, ""},
		{projection.Filter{Index: "by_any", Eq: json.RawMessage(`5`)}, ""},
	} {
		for _, q := range []projection.Query{{List: &tc.filter}, {Count: &tc.filter}} {
			err := q.Check(spec)
			if tc.want == "" && err != nil {
				t.Errorf("%+v: got %v, want nil", tc.filter, err)
			}
			if tc.want != "" && (!errors.Is(err, projection.ErrInvalid) || err.Error() != tc.want) {
				t.Errorf("%+v: got %v, want ErrInvalid %q", tc.filter, err, tc.want)
			}
		}
	}
}
