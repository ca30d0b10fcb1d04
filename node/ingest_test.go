package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	cenats "github.com/cloudevents/sdk-go/protocol/nats/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

// waitEvents polls until aggregate/id holds n events, and returns them.
func waitEvents(t *testing.T, c *client.Client, aggregate, id string, n int) []protocol.Event {
	t.Helper()
	var evs []protocol.Event
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		var err error
		if evs, err = c.ReadAll(aggregate, id); err != nil {
			return err
		}
		if len(evs) != n {
			return fmt.Errorf("%s/%s holds %d events, want %d", aggregate, id, len(evs), n)
		}
		return nil
	})
	return evs
}

// waitRejected polls until the rejected record holds n events of aggregate.
func waitRejected(t *testing.T, c *client.Client, aggregate string, n int) []protocol.RejectedEvent {
	t.Helper()
	var evs []protocol.RejectedEvent
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		var err error
		if evs, err = c.Rejected(aggregate); err != nil {
			return err
		}
		if len(evs) != n {
			return fmt.Errorf("the rejected record holds %d events of %q, want %d", len(evs), aggregate, n)
		}
		return nil
	})
	return evs
}

func TestCloudEventsSDKSenderStores(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)

	sender, err := cenats.NewSender(n.ClientURL(), "dm.append.order.ce-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	ceClient, err := cloudevents.NewClient(sender)
	if err != nil {
		t.Fatal(err)
	}
	ev := cloudevents.NewEvent()
	ev.SetID("sdk-1")
	ev.SetSource("urn:test:sdk")
	ev.SetType("OrderPlaced")
	ev.SetExtension("tenant", "t-1")
	if err := ev.SetData(cloudevents.ApplicationJSON, map[string]any{"customer": "c-1", "total": 30}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second send is the same id: stored once
		if res := ceClient.Send(context.Background(), ev); cloudevents.IsUndelivered(res) {
			t.Fatalf("send: %v", res)
		}
	}
	evs := waitEvents(t, c, "order", "ce-1", 1)
	got := evs[0]
	if got.ID != "sdk-1" || got.Type != "OrderPlaced" || got.Source != "urn:test:sdk" || got.Extensions["tenant"] != "t-1" {
		t.Fatalf("stored %+v", got)
	}
	var data map[string]any
	if err := json.Unmarshal(got.Data, &data); err != nil || data["customer"] != "c-1" || data["total"] != float64(30) {
		t.Fatalf("stored data %s (%v)", got.Data, err)
	}
	// Another event after the duplicate: the duplicate was not stored.
	ev.SetID("sdk-2")
	if res := ceClient.Send(context.Background(), ev); cloudevents.IsUndelivered(res) {
		t.Fatalf("send: %v", res)
	}
	waitEvents(t, c, "order", "ce-1", 2)
}

func TestRawPublishWithoutReplyStores(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	nc := dial(t, n)
	m := nats.NewMsg("dm.append.order.p-1")
	m.Header.Set("ce-type", "OrderPlaced")
	m.Header.Set("ce-id", "pub-1")
	m.Data = []byte(`{"customer":"c-1","total":5}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("dm.append.order.p-2", []byte(`{"specversion":"1.0","type":"OrderPlaced","id":"pub-2","source":"s","data":{"customer":"c-2","total":1}}`)); err != nil {
		t.Fatal(err)
	}
	if evs := waitEvents(t, c, "order", "p-1", 1); evs[0].ID != "pub-1" {
		t.Fatalf("stored %+v", evs[0])
	}
	if evs := waitEvents(t, c, "order", "p-2", 1); evs[0].ID != "pub-2" {
		t.Fatalf("stored %+v", evs[0])
	}
	if evs, _ := c.Rejected(""); len(evs) != 0 {
		t.Fatalf("valid events in the rejected record: %+v", evs)
	}
}

func TestRefusedPublishIsRejectedListedAndReplayedOnce(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	nc := dial(t, n)
	announced := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(protocol.SubjectRejected+".order", announced)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Breaks the contract (no total), structured, with an id.
	if err := nc.Publish("dm.append.order.r-1", []byte(`{"specversion":"1.0","type":"OrderPlaced","id":"rej-1","source":"s","data":{"customer":"c-1"}}`)); err != nil {
		t.Fatal(err)
	}
	// Breaks it too, binary mode, without an id: the node gives it one.
	m := nats.NewMsg("dm.append.order.r-2")
	m.Header.Set("ce-type", "OrderPlaced")
	m.Data = []byte(`{"customer":"c-2"}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if a := receive(t, announced); a.Header.Get("Dm-Rejected-Subject") == "" || a.Header.Get("Dm-Rejected-Error") == "" {
		t.Fatalf("announced %v %s", a.Header, a.Data)
	}
	receive(t, announced)

	evs := waitRejected(t, c, "order", 2)
	if evs[0].Subject != "dm.append.order.r-1" || evs[0].AggregateID != "r-1" || evs[0].ID != "rej-1" ||
		evs[0].Type != "OrderPlaced" || evs[0].Error == nil || evs[0].Error.Code != protocol.CodeSchemaViolation {
		t.Fatalf("first rejected %+v", evs[0])
	}
	if evs[1].ID == "" || evs[1].Error.Code != protocol.CodeSchemaViolation || string(evs[1].Data) != `{"customer":"c-2"}` {
		t.Fatalf("second rejected %+v (%s)", evs[1], evs[1].Data)
	}
	if other := waitRejected(t, c, "billing", 0); len(other) != 0 {
		t.Fatalf("listed under another aggregate: %+v", other)
	}
	st, err := c.RejectedStatus()
	if err != nil || st.Count != 2 || st.MaxBytes <= 0 || st.MaxAgeSeconds <= 0 {
		t.Fatalf("status %+v (%v)", st, err)
	}

	// Still refused: nothing stored, both stay.
	r, err := c.ReplayRejected("")
	if err != nil || len(r.Replayed) != 0 || len(r.Failed) != 2 {
		t.Fatalf("replay before the fix: %+v (%v)", r, err)
	}
	fixContract(t, c)
	r, err = c.ReplayRejected("", evs[0].Seq, evs[1].Seq)
	if err != nil || len(r.Replayed) != 2 || len(r.Failed) != 0 {
		t.Fatalf("replay after the fix: %+v (%v)", r, err)
	}
	if got := waitEvents(t, c, "order", "r-1", 1); got[0].ID != "rej-1" {
		t.Fatalf("replayed %+v", got[0])
	}
	if got := waitEvents(t, c, "order", "r-2", 1); got[0].ID != evs[1].ID {
		t.Fatalf("replayed %+v, want id %s", got[0], evs[1].ID)
	}
	waitRejected(t, c, "", 0)
	_, err = c.ReplayRejected("", evs[0].Seq)
	wantAPIError(t, err, protocol.CodeNotFound)
	checkConflictStays(t, c, nc)
}

// checkConflictStays publishes an event that conflicts with r-1's version:
// it is recorded, kept as sent, refused again on replay, and stays.
func checkConflictStays(t *testing.T, c *client.Client, nc *nats.Conn) {
	t.Helper()
	m := nats.NewMsg("dm.append.order.r-1")
	m.Header.Set("Dm-Expected-Version", "0")
	m.Data = []byte(`{"specversion":"1.0","type":"OrderPlaced","id":"rej-3","source":"s","data":{"customer":"c-1"}}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	again := waitRejected(t, c, "order", 1)
	if again[0].Error.Code != protocol.CodeVersionConflict || again[0].Headers["Dm-Expected-Version"] != "0" {
		t.Fatalf("rejected %+v", again[0])
	}
	r, err := c.ReplayRejected("order")
	if err != nil || len(r.Failed) != 1 || r.Failed[0].Error.Code != protocol.CodeVersionConflict {
		t.Fatalf("replay: %+v (%v)", r, err)
	}
	waitRejected(t, c, "order", 1)
	waitEvents(t, c, "order", "r-1", 1)
}

// fixContract applies a version of OrderPlaced that no longer requires total.
func fixContract(t *testing.T, c *client.Client) {
	t.Helper()
	v2 := `kind: EventType
name: OrderPlaced
aggregate: order
version: 2
owner: team-orders
schema:
  type: object
  required: [customer]
  properties:
    customer: {type: string, minLength: 1}
    total: {type: number, minimum: 0}
    email: {type: string}
`
	if _, err := c.Apply([]byte(v2), false); err != nil {
		t.Fatalf("apply the fix: %v", err)
	}
}

func TestStructuredRequest(t *testing.T) {
	n := newNode(t)
	c := newClient(t, n)
	applyOrderContracts(t, c)
	nc := dial(t, n)
	ct := nats.Header{"content-type": {protocol.ContentTypeStructured}}
	good := `{"specversion":"1.0","type":"OrderPlaced","id":"s-1","source":"s","data":{"customer":"c-1","total":2}}`
	var r protocol.AppendReply
	for i, want := range []bool{false, true} { // the same id twice: stored once
		resp := request(t, nc, "dm.append.order.s-1", ct, good)
		if err := json.Unmarshal(resp.Data, &r); err != nil || r.Seq == 0 || r.Duplicate != want {
			t.Fatalf("append %d: %s (%v)", i, resp.Data, err)
		}
	}
	// No content type: the specversion says structured.
	resp := request(t, nc, "dm.append.order.s-2", nil, `{"specversion":"1.0","type":"OrderPlaced","data_base64":"eyJjdXN0b21lciI6ImMtMiIsInRvdGFsIjozfQ=="}`)
	if err := json.Unmarshal(resp.Data, &r); err != nil || r.Seq == 0 {
		t.Fatalf("append without content type: %s (%v)", resp.Data, err)
	}
	if evs := readAll(t, c, "order", "s-2"); string(evs[0].Data) != `{"customer":"c-2","total":3}` {
		t.Fatalf("data_base64 stored as %s", evs[0].Data)
	}
	for _, bad := range []string{
		`{"specversion":"0.3","type":"OrderPlaced","data":{"customer":"c","total":1}}`,
		`{"type":"OrderPlaced","data":{"customer":"c","total":1}}`,
		`{"specversion":"1.0","type":"OrderPlaced","aggregate":"billing","data":{"customer":"c","total":1}}`,
		`{"specversion":"1.0","type":"OrderPlaced","aggregateid":"o-9","data":{"customer":"c","total":1}}`,
		`{"specversion":"1.0","type":"OrderPlaced","data_base64":"bm90IGpzb24="}`,
		`[]`, `{"specversion":`,
	} {
		wantErrorReply(t, request(t, nc, "dm.append.order.s-3", ct, bad), "400", protocol.CodeBadRequest)
	}
	wantErrorReply(t, request(t, nc, "dm.append.order.s-3", ct, `{"specversion":"1.0","type":"OrderPlaced","data":{"customer":"c"}}`),
		"422", protocol.CodeSchemaViolation)
	if evs := readAll(t, c, "order", "s-3"); len(evs) != 0 {
		t.Fatalf("refused requests stored %+v", evs)
	}
	if evs, _ := c.Rejected(""); len(evs) != 0 {
		t.Fatalf("refused requests were answered, not recorded: %+v", evs)
	}
}
