package node_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
)

// What a client sees for one operation.
const (
	ok      = "ok"      // an answer without error
	refused = "refused" // an error reply (JetStream's or the API's)
	denied  = "denied"  // a permissions violation from the server
)

// matrixServices has one service per grant, and one with none.
var matrixServices = []node.Service{
	{Name: "appender", Password: "appender-secret", Append: []string{"order"}},
	{Name: "reader", Password: "reader-secret", Read: []string{"order"}},
	{Name: "querier", Password: "querier-secret", Query: []string{"orders"}},
	{Name: "consumer", Password: "consumer-secret", Consume: []string{"order"}},
	{Name: "admin", Password: "admin-secret", Admin: true},
	{Name: "none", Password: "none-secret"},
}

// securedNode starts a node with services and the orders example applied
// (through the admin service), and one order stored.
func securedNode(t *testing.T, services []node.Service) *node.Node {
	t.Helper()
	cfg := testConfig(t.TempDir())
	cfg.Services = services
	n := startNode(t, cfg)
	admin := client.New(serviceConn(t, n, "admin", nil))
	applyOrders(t, admin)
	placeOrder(t, admin, "1", "ada", 10)
	return n
}

// serviceConn signs in as the named service (password <name>-secret), with
// its own inbox prefix. Async errors (permissions violations) go to errs.
func serviceConn(t testing.TB, n *node.Node, name string, errs chan error) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.UserInfo(name, name+"-secret"), nats.CustomInboxPrefix("_INBOX_" + name)}
	if errs != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	}
	return dial(t, n, opts...)
}

// probe is one service's fresh connection, seeing its own violations.
type probe struct {
	t    *testing.T
	nc   *nats.Conn
	errs chan error
}

// outcomeWait bounds how long an operation may take to be answered or
// denied; beyond it the client would hang, which is a failure.
const outcomeWait = 10 * time.Second

// request sends a request and says what the client saw.
func (p *probe) request(subject string, h nats.Header, body string) string {
	replies := make(chan *nats.Msg, 1)
	failed := make(chan error, 1)
	go func() {
		m := &nats.Msg{Subject: subject, Header: h, Data: []byte(body)}
		r, err := p.nc.RequestMsg(m, outcomeWait)
		if err != nil {
			failed <- err
			return
		}
		replies <- r
	}()
	select {
	case r := <-replies:
		return replyOutcome(r)
	case err := <-p.errs:
		return violation(p.t, err)
	case err := <-failed:
		if errors.Is(err, nats.ErrNoResponders) {
			return ok
		}
		p.t.Fatalf("request %s: %v (neither an answer nor a permissions violation)", subject, err)
	}
	return ""
}

// publish publishes without a reply; only a violation can be seen, so an
// operation expected to be allowed must be checked another way.
func (p *probe) publish(subject, body string) string {
	if err := p.nc.Publish(subject, []byte(body)); err != nil {
		p.t.Fatalf("publish %s: %v", subject, err)
	}
	select {
	case err := <-p.errs:
		return violation(p.t, err)
	case <-time.After(outcomeWait):
		return ok
	}
}

// subscribe subscribes, and triggers a message on subject through trigger:
// the message arrives (ok) or the subscription is denied.
func (p *probe) subscribe(subject string, trigger func()) string {
	sub, err := p.nc.SubscribeSync(subject)
	if err != nil {
		p.t.Fatalf("subscribe %s: %v", subject, err)
	}
	if err := p.nc.Flush(); err != nil {
		p.t.Fatalf("flush: %v", err)
	}
	trigger()
	// nats.go hands a subscription's violation to the subscription too.
	got := make(chan error, 1)
	go func() {
		_, err := sub.NextMsg(outcomeWait)
		got <- err
	}()
	select {
	case err := <-got:
		if err == nil {
			return ok
		}
		if errors.Is(err, nats.ErrTimeout) {
			p.t.Fatalf("subscribe %s: neither a message nor a violation", subject)
		}
		return violation(p.t, err)
	case err := <-p.errs:
		return violation(p.t, err)
	}
}

func violation(t *testing.T, err error) string {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("async error %v, want a permissions violation", err)
	}
	return denied
}

// replyOutcome reads an API or JetStream reply.
func replyOutcome(r *nats.Msg) string {
	if r.Header.Get(micro.ErrorCodeHeader) != "" {
		return refused
	}
	var js struct {
		Error *json.RawMessage `json:"error"`
	}
	if json.Unmarshal(r.Data, &js) == nil && js.Error != nil {
		return refused
	}
	return ok
}

func appendHeaders() nats.Header {
	return nats.Header{"ce-type": []string{"OrderPlaced"}, "ce-specversion": []string{"1.0"},
		"ce-source": []string{"test"}}
}

const (
	orderData   = `{"customer":"bob","total":3}`
	consumerReq = `{"stream_name":"EVENTS","config":{"name":%q,"filter_subject":%q,"ack_policy":"explicit","inactive_threshold":60000000000}}`
)

func consumerBody(name, filter string) string {
	b := strings.Replace(consumerReq, "%q", `"`+name+`"`, 1)
	return strings.Replace(b, "%q", `"`+filter+`"`, 1)
}

// matrixCase is one operation and what each service sees doing it.
type matrixCase struct {
	name string
	do   func(p *probe, svc string) string
	// want is the outcome per service; services not named are denied.
	want map[string]string
}

func allOf(outcome string, names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = outcome
	}
	return m
}

var everyone = []string{"appender", "reader", "querier", "consumer", "admin", "none"}

func req(subject, body string) func(*probe, string) string {
	return func(p *probe, _ string) string { return p.request(subject, nil, body) }
}

// matrixCases are in order: consumers are created before they are fetched
// from and deleted.
func matrixCases(adminNC *nats.Conn) []matrixCase {
	admin := client.New(adminNC)
	cons := func(filter string, name func(svc string) string) func(*probe, string) string {
		return func(p *probe, svc string) string {
			n := name(svc)
			return p.request("$JS.API.CONSUMER.CREATE.EVENTS."+n+"."+filter, nil, consumerBody(n, filter))
		}
	}
	own := func(svc string) string { return svc }
	return []matrixCase{
		{"append own aggregate", func(p *probe, _ string) string {
			return p.request("dm.append.order.p1", appendHeaders(), orderData)
		}, allOf(ok, "appender", "admin")},
		{"append other aggregate", func(p *probe, _ string) string {
			return p.request("dm.append.payment.p1", appendHeaders(), `{}`)
		}, allOf(ok, "admin")},
		{"read", req("dm.read.order.1", ""), allOf(ok, "reader", "admin")},
		{"read other aggregate", req("dm.read.payment.1", ""), allOf(ok, "admin")},
		{"query", req("dm.query.orders", `{"get":"1"}`), allOf(ok, "querier", "admin")},
		{"query a version", req("dm.query.orders.v1", `{"get":"1"}`), allOf(ok, "querier", "admin")},
		{"changes", func(p *probe, _ string) string {
			return p.subscribe("dm.changes.orders.>", func() { placeOrderErr(admin, "c-"+p.nc.Opts.User) })
		}, allOf(ok, "querier", "admin")},
		{"rejected announcements, own aggregate", func(p *probe, _ string) string {
			return p.subscribe("dm.rejected.order", func() {
				m := &nats.Msg{Subject: "dm.append.order.bad", Header: appendHeaders(), Data: []byte(`{"total":"x"}`)}
				_ = adminNC.PublishMsg(m)
			})
		}, allOf(ok, "appender", "admin")},
		{"admin: projections", req("dm.admin.projections", `{}`), allOf(ok, "admin")},
		{"admin: mesh status", req("dm.admin.mesh", `{}`), allOf(ok, "admin")},
		{"admin: apply", req("dm.admin.apply", `[]`), allOf(refused, "admin")},
		{"admin: retire", req("dm.admin.projection.retire", `{"name":"nope","version":9}`), allOf(refused, "admin")},
		{"admin: rejected", req("dm.admin.rejected.status", `{}`), allOf(ok, "admin")},
		{"discovery", req("dm.discovery", ""), allOf(ok, everyone...)},
		{"$SRV ping", req("$SRV.PING.datamesh", ""), allOf(ok, everyone...)},
		{"stream snapshot", req("$JS.API.STREAM.SNAPSHOT.EVENTS", `{"deliver_subject":"_INBOX_x.snap"}`), nil},
		{"stream restore", req("$JS.API.STREAM.RESTORE.EVENTS", `{}`), nil},
		{"stream create", req("$JS.API.STREAM.CREATE.EVIL", `{"name":"EVIL","subjects":["evil.>"]}`), nil},
		{"stream update", req("$JS.API.STREAM.UPDATE.EVENTS", `{"name":"EVENTS","subjects":["evt.>"]}`), nil},
		{"stream purge", req("$JS.API.STREAM.PURGE.EVENTS", `{}`), nil},
		{"stream delete", req("$JS.API.STREAM.DELETE.EVENTS", ``), nil},
		{"stream message delete", req("$JS.API.STREAM.MSG.DELETE.EVENTS", `{"seq":1}`), nil},
		{"direct get", req("$JS.API.DIRECT.GET.EVENTS", `{"seq":1}`), nil},
		{"stream list", req("$JS.API.STREAM.LIST", `{}`), nil},
		{"domain: snapshot", req("$JS.test.API.STREAM.SNAPSHOT.EVENTS", `{"deliver_subject":"_INBOX_x.snap"}`), nil},
		{"stream info", req("$JS.API.STREAM.INFO.EVENTS", ``), allOf(ok, "consumer", "admin")},
		{"consumer on own aggregate", cons("evt.order.>", own), allOf(ok, "consumer", "admin")},
		{"consumer on own aggregate, one id", cons("evt.order.1.>", own), allOf(ok, "consumer", "admin")},
		{"consumer on other aggregate", cons("evt.payment.>", own), allOf(ok, "admin")},
		{"consumer on every aggregate", cons("evt.*.>", own), allOf(ok, "admin")},
		{"consumer on the whole log", cons(">", own), allOf(ok, "admin")},
		{"consumer under another name", cons("evt.order.>", func(string) string { return "stolen" }), allOf(ok, "admin")},
		{"consumer with a filter other than its subject's", func(p *probe, svc string) string {
			return p.request("$JS.API.CONSUMER.CREATE.EVENTS."+svc+".evt.order.>", nil, consumerBody(svc, "evt.payment.>"))
		}, allOf(refused, "consumer", "admin")},
		{"legacy durable create", func(p *probe, svc string) string {
			return p.request("$JS.API.CONSUMER.DURABLE.CREATE.EVENTS."+svc, nil, `{"stream_name":"EVENTS","config":{"durable_name":"`+svc+`","filter_subject":"evt.order.>"}}`)
		}, nil},
		{"domain: consumer on own aggregate", func(p *probe, svc string) string {
			return p.request("$JS.test.API.CONSUMER.CREATE.EVENTS."+svc+".evt.order.>", nil, consumerBody(svc, "evt.order.>"))
		}, allOf(ok, "consumer", "admin")},
		{"fetch from own consumer", func(p *probe, svc string) string {
			return p.request("$JS.API.CONSUMER.MSG.NEXT.EVENTS."+svc, nil, `{"batch":1,"expires":1000000000}`)
		}, allOf(ok, "consumer", "admin")},
		{"fetch from another's consumer", req("$JS.API.CONSUMER.MSG.NEXT.EVENTS.other", `{"batch":1,"no_wait":true}`), allOf(ok, "admin")},
		{"consumer info, own", func(p *probe, svc string) string {
			return p.request("$JS.API.CONSUMER.INFO.EVENTS."+svc, nil, ``)
		}, allOf(ok, "consumer", "admin")},
		{"consumer list", req("$JS.API.CONSUMER.LIST.EVENTS", `{}`), nil},
		{"delete another's consumer", req("$JS.API.CONSUMER.DELETE.EVENTS.other", ``), allOf(ok, "admin")},
		{"delete own consumer", func(p *probe, svc string) string {
			return p.request("$JS.API.CONSUMER.DELETE.EVENTS."+svc, nil, ``)
		}, allOf(ok, "consumer", "admin")},
		{"another service's inbox", func(p *probe, svc string) string {
			other := "reader"
			if svc == other {
				other = "none"
			}
			return p.subscribe("_INBOX_"+other+".>", func() {})
		}, nil},
		{"every inbox", func(p *probe, svc string) string { return p.subscribe("_INBOX.>", func() {}) }, nil},
		{"the API's requests", func(p *probe, svc string) string { return p.subscribe("dm.append.>", func() {}) }, nil},
		{"raw publish to the log", func(p *probe, _ string) string { return p.publish("evt.order.9.OrderPlaced", orderData) }, nil},
		{"registry bucket: write", func(p *probe, _ string) string { return p.publish("$KV.datamesh_registry.x", `{}`) }, nil},
		{"registry bucket: read", req("$JS.API.DIRECT.GET.KV_datamesh_registry", `{"last_by_subj":"$KV.datamesh_registry.x"}`), nil},
		{"registry stream info", req("$JS.API.STREAM.INFO.KV_datamesh_registry", ``), nil},
		{"$SYS", req("$SYS.REQ.SERVER.PING", `{}`), nil},
	}
}

func placeOrderErr(c *client.Client, id string) {
	_, _ = c.Append("order", id, "OrderPlaced", []byte(orderData), client.AppendOptions{})
}

// TestPermissionMatrix checks, for each grant and each operation class,
// that the operation is allowed or denied, and what a denied client sees:
// a permissions violation from the server, at once, never a hang.
func TestPermissionMatrix(t *testing.T) {
	n := securedNode(t, matrixServices)
	adminNC := serviceConn(t, n, "admin", nil)
	// A consumer nobody but the admin owns.
	if _, err := adminNC.Request("$JS.API.CONSUMER.CREATE.EVENTS.other.evt.order.>", []byte(consumerBody("other", "evt.order.>")), outcomeWait); err != nil {
		t.Fatalf("create consumer other: %v", err)
	}
	for _, c := range matrixCases(adminNC) {
		for _, svc := range everyone {
			want := c.want[svc]
			if want == "" {
				want = denied
			}
			errs := make(chan error, 8)
			p := &probe{t: t, nc: serviceConn(t, n, svc, errs), errs: errs}
			// A denied outcome needs no wait beyond the violation; an
			// allowed raw publish cannot be seen, and none is expected.
			if got := c.do(p, svc); got != want {
				t.Errorf("%s as %s: %s, want %s", c.name, svc, got, want)
			}
			p.nc.Close()
		}
	}
}

// TestAnonymousCannotCopyOrReplaceTheLog: without services, anonymous
// clients (loopback only) have the API, but not the stream's snapshot and
// restore, which would copy redacted fields out or replace the log.
func TestAnonymousCannotCopyOrReplaceTheLog(t *testing.T) {
	n := newNode(t)
	for _, subject := range []string{"$JS.API.STREAM.SNAPSHOT.EVENTS", "$JS.API.STREAM.RESTORE.EVENTS", "$JS.API.STREAM.PURGE.EVENTS"} {
		errs := make(chan error, 8)
		p := &probe{t: t, nc: dial(t, n, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })), errs: errs}
		if got := p.request(subject, nil, `{"deliver_subject":"x.snap"}`); got != denied {
			t.Errorf("%s as anonymous: %s, want denied", subject, got)
		}
	}
}
