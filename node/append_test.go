package node_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func TestAppendReadRoundTripOverTCP(t *testing.T) {
	n := newNode(t)
	nc := dial(t, n)

	r1 := appendOverTCP(t, nc, "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`, nats.Header{"ce-source": {"/shop"}, "ce-traceparent": {"00-abc"}})
	r2 := appendOverTCP(t, nc, "o-2", "OrderPlaced", `{"customer":"c-2","total":5}`, nil)
	r3 := appendOverTCP(t, nc, "o-1", "OrderShipped", `{}`, nats.Header{"ce-time": {"2026-01-02T03:04:05Z"}})
	if r1.Seq != 1 || r2.Seq != 2 || r3.Seq != 3 || r1.Duplicate {
		t.Fatalf("got seqs %d %d %d (dup %v), want 1 2 3", r1.Seq, r2.Seq, r3.Seq, r1.Duplicate)
	}
	checkAggregateReadOverTCP(t, nc)
	checkCategoryRead(t, client.New(nc))
}

// appendOverTCP appends one order event by a bare request on
// dm.append.order.<id>, with ce-type typ and the extra headers, and returns
// the decoded reply.
func appendOverTCP(t testing.TB, nc *nats.Conn, id, typ, body string, extra nats.Header) protocol.AppendReply {
	t.Helper()
	h := nats.Header{"ce-type": {typ}}
	for k, v := range extra {
		h[k] = v
	}
	resp := request(t, nc, "dm.append.order."+id, h, body)
	var r protocol.AppendReply
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatalf("reply %q: %v", resp.Data, err)
	}
	return r
}

// checkAggregateReadOverTCP reads order o-1, as TestAppendReadRoundTripOverTCP
// appended it, by a bare request, and checks its two events' attributes and
// data, and the wire shape of the reply.
func checkAggregateReadOverTCP(t testing.TB, nc *nats.Conn) {
	t.Helper()
	resp := request(t, nc, "dm.read.order.o-1", nil, "")
	var rr protocol.ReadReply
	if err := json.Unmarshal(resp.Data, &rr); err != nil {
		t.Fatalf("read reply %q: %v", resp.Data, err)
	}
	if len(rr.Events) != 2 || rr.NextSeq != 0 {
		t.Fatalf("got %d events (next %d), want 2 (next 0): %s", len(rr.Events), rr.NextSeq, resp.Data)
	}
	e1, e2 := rr.Events[0], rr.Events[1]
	if e1.Seq != 1 || e1.Type != "OrderPlaced" || e1.Aggregate != "order" || e1.AggregateID != "o-1" {
		t.Fatalf("got first event %+v", e1)
	}
	if e1.SpecVersion != "1.0" || e1.Source != "/shop" || e1.ID == "" || e1.Time == "" || e1.DataContentType != "application/json" {
		t.Fatalf("got attributes %+v, want specversion 1.0, source /shop, an id, a time", e1)
	}
	if got := e1.Extensions["traceparent"]; got != "00-abc" {
		t.Fatalf("got extension traceparent %q, want 00-abc", got)
	}
	if string(e1.Data) != `{"customer":"c-1","total":30}` {
		t.Fatalf("got data %s", e1.Data)
	}
	if e2.Seq != 3 || e2.Type != "OrderShipped" || e2.Time != "2026-01-02T03:04:05Z" {
		t.Fatalf("got second event %+v", e2)
	}
	if e2.Source != "urn:datamesh:test" {
		t.Fatalf("got default source %q, want urn:datamesh:test", e2.Source)
	}
	// The raw reply is structured CloudEvents with extensions at the top level.
	var raw struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(resp.Data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Events[0]["traceparent"] != "00-abc" || raw.Events[0]["seq"] != float64(1) {
		t.Fatalf("got raw event %v, want traceparent and seq at the top level", raw.Events[0])
	}
}

// checkCategoryRead checks that a category read pages through the three
// order events TestAppendReadRoundTripOverTCP appended, and that an unknown
// aggregate reads empty.
func checkCategoryRead(t testing.TB, c *client.Client) {
	t.Helper()
	page, err := c.Read("order", "", protocol.ReadRequest{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 || page.NextSeq != 3 {
		t.Fatalf("got %d events next %d, want 2 next 3", len(page.Events), page.NextSeq)
	}
	rest, err := c.Read("order", "", protocol.ReadRequest{FromSeq: page.NextSeq})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Events) != 1 || rest.Events[0].Seq != 3 || rest.NextSeq != 0 {
		t.Fatalf("got %+v, want only seq 3", rest)
	}
	none, err := c.Read("customer", "", protocol.ReadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Events) != 0 {
		t.Fatalf("got %d events of an unknown aggregate, want 0", len(none.Events))
	}
}

func TestAppendWithSameIDIsStoredOnce(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	first, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{"total":1}`), client.AppendOptions{ID: "evt-1", ExpectedVersion: client.Expect(0)})
	if err != nil {
		t.Fatal(err)
	}
	// A retry, even with the same expected version, is a duplicate and not a conflict.
	again, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{"total":1}`), client.AppendOptions{ID: "evt-1", ExpectedVersion: client.Expect(0)})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("got retry %+v, want duplicate of seq %d", again, first.Seq)
	}
	if evs := readAll(t, c, "order", "o-1"); len(evs) != 1 || evs[0].ID != "evt-1" {
		t.Fatalf("got %d events, want 1 with id evt-1", len(evs))
	}
}

func TestAppendVersionConflict(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	r, err := c.Append("order", "o-1", "OrderPlaced", []byte(`{}`), client.AppendOptions{ExpectedVersion: client.Expect(0)})
	if err != nil {
		t.Fatal(err)
	}
	// Another aggregate's event does not move o-1's version.
	if _, err := c.Append("order", "o-2", "OrderPlaced", []byte(`{}`), client.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Append("order", "o-1", "OrderPlaced", []byte(`{}`), client.AppendOptions{ExpectedVersion: client.Expect(0)})
	e := wantAPIError(t, err, protocol.CodeVersionConflict)
	if e.Status != 409 || e.CurrentVersion == nil || *e.CurrentVersion != r.Seq {
		t.Fatalf("got %+v, want status 409 and current_version %d", e, r.Seq)
	}
	if _, err := c.Append("order", "o-1", "OrderShipped", []byte(`{}`), client.AppendOptions{ExpectedVersion: client.Expect(r.Seq)}); err != nil {
		t.Fatalf("append at the current version: %v", err)
	}
	if evs := readAll(t, c, "order", "o-1"); len(evs) != 2 {
		t.Fatalf("got %d events, want 2: the conflicting append must store nothing", len(evs))
	}
}

func TestAppendErrorReplies(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxEventBytes = 1024
	n := startNode(t, cfg)
	nc := dial(t, n)
	typ := nats.Header{"ce-type": {"OrderPlaced"}}
	cases := []struct {
		name, subject string
		h             nats.Header
		body          string
		status, code  string
	}{
		{"body not JSON", "dm.append.order.o-1", typ, `{"total":`, "400", protocol.CodeBadRequest},
		{"empty body", "dm.append.order.o-1", typ, ``, "400", protocol.CodeBadRequest},
		{"missing ce-type", "dm.append.order.o-1", nil, `{}`, "400", protocol.CodeBadRequest},
		{"type with a dot", "dm.append.order.o-1", nats.Header{"ce-type": {"Order.Placed"}}, `{}`, "400", protocol.CodeBadRequest},
		{"type with a star", "dm.append.order.o-1", nats.Header{"ce-type": {"Order*"}}, `{}`, "400", protocol.CodeBadRequest},
		{"type with a space", "dm.append.order.o-1", nats.Header{"ce-type": {"Order Placed"}}, `{}`, "400", protocol.CodeBadRequest},
		{"no id in subject", "dm.append.order", typ, `{}`, "400", protocol.CodeBadRequest},
		{"too many tokens", "dm.append.order.o-1.x", typ, `{}`, "400", protocol.CodeBadRequest},
		{"bad expected version", "dm.append.order.o-1", nats.Header{"ce-type": {"X"}, "Dm-Expected-Version": {"abc"}}, `{}`, "400", protocol.CodeBadRequest},
		{"bad time", "dm.append.order.o-1", nats.Header{"ce-type": {"X"}, "ce-time": {"yesterday"}}, `{}`, "400", protocol.CodeBadRequest},
		{"bad specversion", "dm.append.order.o-1", nats.Header{"ce-type": {"X"}, "ce-specversion": {"0.3"}}, `{}`, "400", protocol.CodeBadRequest},
		{"not JSON content", "dm.append.order.o-1", nats.Header{"ce-type": {"X"}, "content-type": {"text/plain"}}, `{}`, "400", protocol.CodeBadRequest},
		{"too large", "dm.append.order.o-1", typ, `{"x":"` + strings.Repeat("a", 2000) + `"}`, "413", protocol.CodeTooLarge},
		{"batch not an array", "dm.append.order.o-1", nats.Header{"content-type": {protocol.ContentTypeBatch}}, `{"type":"X"}`, "400", protocol.CodeBadRequest},
		{"empty batch", "dm.append.order.o-1", nats.Header{"content-type": {protocol.ContentTypeBatch}}, `[]`, "400", protocol.CodeBadRequest},
		{"read with bad body", "dm.read.order.o-1", nil, `{"from":1}`, "400", protocol.CodeBadRequest},
		{"read with bad limit", "dm.read.order", nil, `{"limit":-1}`, "400", protocol.CodeBadRequest},
		{"apply nothing", "dm.admin.apply", nil, ``, "400", protocol.CodeBadRequest},
		{"apply unknown kind", "dm.admin.apply", nil, "kind: Widget\nname: w\n", "400", protocol.CodeBadRequest},
		{"apply no kind", "dm.admin.apply", nil, "name: w\n", "400", protocol.CodeBadRequest},
		{"apply bad force", "dm.admin.apply", nats.Header{"Dm-Force": {"maybe"}}, "kind: EventType\n", "400", protocol.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErrorReply(t, request(t, nc, tc.subject, tc.h, tc.body), tc.status, tc.code)
		})
	}
	c := client.New(nc)
	if evs := readAll(t, c, "order", ""); len(evs) != 0 {
		t.Fatalf("got %d stored events after only bad requests, want 0", len(evs))
	}
}

func TestPipelinedAppendsAllGetTheirOwnSeq(t *testing.T) {
	for _, d := range []string{node.DurabilityOS, node.DurabilityFsync} {
		t.Run(d, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Durability = d
			testPipelinedAppends(t, startNode(t, cfg))
		})
	}
}

func testPipelinedAppends(t *testing.T, n *node.Node) {
	nc := dial(t, n)
	const total = 500
	// Many requests in flight on one connection, as a busy service has.
	replies := make(chan *nats.Msg, total)
	inbox := nats.NewInbox()
	sub, err := nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range total {
		m := nats.NewMsg(fmt.Sprintf("dm.append.order.o-%d", i%7))
		m.Reply = fmt.Sprintf("%s.%d", inbox, i)
		m.Header.Set("ce-type", "OrderPlaced")
		m.Data = []byte(fmt.Sprintf(`{"n":%d}`, i))
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	seqs := map[uint64]bool{}
	for range total {
		m := receive(t, replies)
		var r protocol.AppendReply
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Seq == 0 {
			t.Fatalf("reply %q: %v", m.Data, err)
		}
		seqs[r.Seq] = true
	}
	if len(seqs) != total {
		t.Fatalf("got %d distinct seqs, want %d", len(seqs), total)
	}
	if evs := readAll(t, client.New(nc), "order", ""); len(evs) != total {
		t.Fatalf("got %d events, want %d", len(evs), total)
	}
}

func TestConcurrentExpectedVersionWritersOneWins(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Append("order", "o-1", "OrderPlaced", []byte(fmt.Sprintf(`{"w":%d}`, i)), client.AppendOptions{ExpectedVersion: client.Expect(0)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		if err == nil {
			won++
			continue
		}
		wantAPIError(t, err, protocol.CodeVersionConflict)
	}
	if won != 1 {
		t.Fatalf("got %d winners, want exactly 1", won)
	}
}

// TestGroupCommitKeepsEachAnswer pipelines appends so that they are written
// in groups, with duplicates and stale expected versions mixed in: a refused
// group is written again one by one, so each request gets its own answer.
func TestGroupCommitKeepsEachAnswer(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Durability = node.DurabilityFsync // group commit is the fsync mode's
	n := startNode(t, cfg)
	nc := dial(t, n)
	c := client.New(nc)
	if _, err := c.Append("order", "first", "OrderPlaced", []byte(`{}`), client.AppendOptions{ID: "dup-0"}); err != nil {
		t.Fatal(err)
	}
	const total = 300
	replies := make(chan *nats.Msg, total)
	inbox := nats.NewInbox()
	sub, err := nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range total {
		m := nats.NewMsg(fmt.Sprintf("dm.append.order.g-%d", i))
		m.Reply = fmt.Sprintf("%s.%d", inbox, i)
		m.Header.Set("ce-type", "OrderPlaced")
		switch {
		case i%10 == 3:
			m.Header.Set("ce-id", "dup-0") // stored before: a duplicate
		case i%10 == 7:
			m.Header.Set("Dm-Expected-Version", "5") // g-i is new: a conflict
		case i%10 == 8:
			m.Header.Set("Dm-Expected-Version", "0") // g-i is new: fine
		}
		m.Data = []byte(`{}`)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	stored := map[uint64]bool{}
	for range total {
		m := receive(t, replies)
		i, _ := strconv.Atoi(m.Subject[len(inbox)+1:])
		var body struct {
			protocol.AppendReply
			Error *protocol.Error `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%10 == 3:
			if !body.Duplicate || body.Seq != 1 {
				t.Fatalf("append %d: got %s, want a duplicate of seq 1", i, m.Data)
			}
		case i%10 == 7:
			if body.Error == nil || body.Error.Code != protocol.CodeVersionConflict {
				t.Fatalf("append %d: got %s, want a version conflict", i, m.Data)
			}
		default:
			if body.Error != nil || body.Seq == 0 || body.Duplicate || stored[body.Seq] {
				t.Fatalf("append %d: got %s, want a new seq", i, m.Data)
			}
			stored[body.Seq] = true
		}
	}
	if evs := readAll(t, c, "order", ""); len(evs) != 1+len(stored) || len(stored) != total*8/10 {
		t.Fatalf("got %d events, want %d", len(evs), 1+total*8/10)
	}
}
