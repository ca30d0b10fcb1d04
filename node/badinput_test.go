package node_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
)

var updateDocs = flag.Bool("update", false, "rewrite the bad-input table of docs/protocol.md from TestBadInputTable's cases")

// badInput is one class of bad input and the reply it gets.
type badInput struct {
	class   string
	subject string
	headers []string // "name: value"
	body    string
	show    string // the body as the table shows it, if not the body itself
	code    string
	status  int
	message string // a part of the message: its shape
}

var bigBody = `{"pad":"` + strings.Repeat("x", 600*1024) + `"}`

const (
	batchCT = "content-type: " + protocol.ContentTypeBatch
	sct     = "content-type: " + protocol.ContentTypeStructured
)

// badInputs are the cases of TestBadInputTable and the rows of the table
// in docs/protocol.md. The node has the orders example applied, o-1 holds
// one event (ce-id seed-1), and max_batch is 2.
//
// Structured-mode appends and publishes without a reply subject (the
// ingest work of issue 13) get their rows here too, before "reads".
var badInputs = []badInput{
	// Appends, binary mode.
	{"subject without an id", "dm.append.order", []string{"ce-type: OrderPlaced"}, `{}`, "", "bad_request", 400, "want dm.append.<aggregate>.<id>"},
	{"subject with an extra token", "dm.append.order.o-2.x", []string{"ce-type: OrderPlaced"}, `{}`, "", "bad_request", 400, "want dm.append.<aggregate>.<id>"},
	{"missing ce-type", "dm.append.order.o-2", nil, `{"customer":"c","total":1}`, "", "bad_request", 400, "the event type (ce-type) is required"},
	{"ce-type not one token", "dm.append.order.o-2", []string{"ce-type: Order.Placed"}, `{}`, "", "bad_request", 400, "must be one NATS token"},
	{"unsupported ce-specversion", "dm.append.order.o-2", []string{"ce-type: OrderPlaced", "ce-specversion: 0.3"}, `{}`, "", "bad_request", 400, "is not supported; use 1.0"},
	{"content-type not JSON", "dm.append.order.o-2", []string{"ce-type: OrderPlaced", "content-type: text/plain"}, `{}`, "", "bad_request", 400, `content-type "text/plain" is not JSON`},
	{"empty body", "dm.append.order.o-2", []string{"ce-type: OrderPlaced"}, ``, "", "bad_request", 400, "event data is empty"},
	{"body not JSON", "dm.append.order.o-2", []string{"ce-type: OrderPlaced"}, `{"customer":`, "", "bad_request", 400, "event data is not valid JSON"},
	{"ce-time not RFC 3339", "dm.append.order.o-2", []string{"ce-type: OrderPlaced", "ce-time: yesterday"}, `{"customer":"c","total":1}`, "", "bad_request", 400, "is not an RFC 3339 timestamp"},
	{"ce-id over 256 characters", "dm.append.order.o-2", []string{"ce-type: OrderPlaced", "ce-id: " + strings.Repeat("i", 300)}, `{"customer":"c","total":1}`, "", "bad_request", 400, "ce-id must be at most 256 characters"},
	{"Dm-Expected-Version not a number", "dm.append.order.o-2", []string{"ce-type: OrderPlaced", "Dm-Expected-Version: abc"}, `{"customer":"c","total":1}`, "", "bad_request", 400, "want the seq of the aggregate's last event"},
	{"expected version does not hold", "dm.append.order.o-1", []string{"ce-type: ItemAdded", "Dm-Expected-Version: 0"}, `{"sku":"s","price":1}`, "", "version_conflict", 409, "expected version 0, but the aggregate is at version 1"},
	{"data over max_event_bytes", "dm.append.order.o-2", []string{"ce-type: OrderPlaced"}, bigBody, "600 KiB of JSON", "too_large", 413, "; the limit is 524288"},
	{"data breaks the contract", "dm.append.order.o-2", []string{"ce-type: OrderPlaced"}, `{"customer":"c-2"}`, "", "schema_violation", 422, "data does not satisfy contract order.OrderPlaced (1 violations): missing property 'total'"},
	// Appends, batches.
	{"batch not an array", "dm.append.order.o-2", []string{batchCT}, `{}`, "", "bad_request", 400, "body must be a JSON array of CloudEvents"},
	{"batch empty", "dm.append.order.o-2", []string{batchCT}, `[]`, "", "bad_request", 400, "the batch is empty"},
	{"batch over max_batch", "dm.append.order.o-2", []string{batchCT}, `[{},{},{}]`, "", "too_large", 413, "the batch has 3 events; the limit is 2"},
	{"batch event not an object", "dm.append.order.o-2", []string{batchCT}, `[1]`, "", "bad_request", 400, "not a JSON object"},
	{"batch attribute not a string", "dm.append.order.o-2", []string{batchCT}, `[{"type":1,"data":{}}]`, "", "bad_request", 400, `attribute "type" must be a string`},
	{"batch data_base64 not base64 of JSON", "dm.append.order.o-2", []string{batchCT}, `[{"type":"X","data_base64":"AA=="}]`, "", "bad_request", 400, "event 0: data_base64 must be base64 of JSON data"},
	{"batch id used twice", "dm.append.order.o-2", []string{batchCT}, `[{"type":"X","id":"a","data":{}},{"type":"X","id":"a","data":{}}]`, "", "bad_request", 400, `id "a" is also used by event 0`},
	{"batch event breaks the contract", "dm.append.order.o-2", []string{batchCT}, `[{"type":"X","data":{}},{"type":"ItemAdded","data":{"sku":"s"}}]`, "", "schema_violation", 422, "data does not satisfy contract order.ItemAdded"},
	{"batch expected version does not hold", "dm.append.order.o-1", []string{batchCT, "Dm-Expected-Version: 0"}, `[{"type":"X","data":{}}]`, "", "version_conflict", 409, "expected version 0, but the aggregate is at version 1"},
	{"batch reusing some stored ids", "dm.append.order.o-1", []string{batchCT}, `[{"type":"X","id":"seed-1","data":{}},{"type":"X","id":"new-1","data":{}}]`, "", "duplicate", 409, "some event ids of this batch are already stored, but not as this same batch"},
	// Appends, structured mode (content-type application/cloudevents+json,
	// or no content type and a JSON object body with specversion).
	{"structured: specversion not 1.0", "dm.append.order.o-2", []string{sct}, `{"specversion":"0.3","type":"OrderPlaced","data":{}}`, "", "bad_request", 400, `specversion "0.3" is not supported; use 1.0`},
	{"structured: no specversion", "dm.append.order.o-2", []string{sct}, `{"type":"OrderPlaced","data":{}}`, "", "bad_request", 400, `a structured CloudEvent needs "specversion"`},
	{"structured: aggregate disagrees with the subject", "dm.append.order.o-2", nil, `{"specversion":"1.0","type":"OrderPlaced","aggregate":"invoice","data":{}}`, "", "bad_request", 400, `attribute aggregate "invoice" disagrees with the subject's aggregate "order"`},
	{"structured: attribute name not lower-case letters and digits", "dm.append.order.o-2", []string{sct}, `{"specversion":"1.0","type":"OrderPlaced","Trace":"x","data":{}}`, "", "bad_request", 400, `attribute name "Trace": CloudEvents attribute names are lower-case letters and digits`},
	{"structured: attribute given twice", "dm.append.order.o-2", []string{sct}, `{"specversion":"1.0","type":"OrderPlaced","type":"ItemAdded","data":{}}`, "", "bad_request", 400, `attribute "type" appears twice`},
	// Reads.
	{"read subject with an extra token", "dm.read.order.o-1.x", nil, ``, "", "bad_request", 400, "want dm.read.<aggregate>.<id>"},
	{"read body not JSON", "dm.read.order", nil, `from 1`, "", "bad_request", 400, "read body: "},
	{"read body with an unknown field", "dm.read.order", nil, `{"from":1}`, "", "bad_request", 400, `read body: json: unknown field "from"`},
	{"read limit out of range", "dm.read.order", nil, `{"limit":-1}`, "", "bad_request", 400, "limit -1: must be between 1 and 10000"},
	// Queries.
	{"query subject with a bad version", "dm.query.orders.x", nil, `{"get":"o-1"}`, "", "bad_request", 400, "want dm.query.<projection>[.v<version>]"},
	{"query body not JSON", "dm.query.orders", nil, `get o-1`, "", "bad_request", 400, "query body: "},
	{"query with an unknown field", "dm.query.orders", nil, `{"gets":"o-1"}`, "", "bad_request", 400, `query body: json: unknown field "gets"`},
	{"query with two operations", "dm.query.orders", nil, `{"get":"o-1","history":"o-1"}`, "", "bad_request", 400, "a query needs exactly one of get, list, count or history"},
	{"query on an unknown index", "dm.query.orders", nil, `{"list":{"index":"by_colour"}}`, "", "bad_request", 400, `has no index "by_colour"`},
	{"query bound of the wrong type", "dm.query.orders", nil, `{"list":{"index":"by_total","eq":"x"}}`, "", "bad_request", 400, "index by_total has type number"},
	{"query limit out of range", "dm.query.orders", nil, `{"list":{"limit":5000}}`, "", "bad_request", 400, "limit 5000: must be between 1 and 1000"},
	{"query cursor not from the node", "dm.query.orders", nil, `{"list":{"after":"zzz"}}`, "", "bad_request", 400, "after: not a cursor from this projection"},
	{"query of an unknown projection", "dm.query.nope", nil, `{"get":"o-1"}`, "", "not_found", 404, "nope"},
	{"query of an unknown document", "dm.query.orders", nil, `{"get":"o-9","min_seq":1,"timeout_ms":5000}`, "", "not_found", 404, `no document "o-9"`},
	// Admin requests.
	{"apply body empty", "dm.admin.apply", nil, ``, "", "bad_request", 400, "no resource in the request body"},
	{"apply YAML syntax error", "dm.admin.apply", nil, "kind: [EventType\n", "", "bad_request", 400, "did not find expected ',' or ']'"},
	{"apply unknown kind", "dm.admin.apply", nil, "kind: Widget\n", "", "bad_request", 400, `unknown kind "Widget"`},
	{"apply unknown field", "dm.admin.apply", nil, "kind: EventType\nnam: X\n", "", "bad_request", 400, `unknown field "nam" in contract`},
	{"apply bad Dm-Force", "dm.admin.apply", []string{"Dm-Force: maybe"}, "kind: Widget\n", "", "bad_request", 400, "Dm-Force: "},
	{"apply a changed contract version", "dm.admin.apply", nil, "kind: EventType\nname: OrderPlaced\naggregate: order\nversion: 1\nschema: {type: object}\n", "", "conflict", 409, "version 1"},
	{"apply an incompatible contract", "dm.admin.apply", nil, "kind: EventType\nname: OrderPlaced\naggregate: order\nversion: 2\nschema: {type: object, required: [email]}\n", "", "incompatible", 409, "is not compatible with version 1"},
	{"projection retry body malformed", "dm.admin.projection.retry", nil, `{}`, "", "bad_request", 400, `want {"name": "<projection>"}`},
	{"projection promote without a version", "dm.admin.projection.promote", nil, `{"name":"orders"}`, "", "bad_request", 400, `want {"name": "<projection>", "version": N}`},
	{"projection retire not JSON", "dm.admin.projection.retire", nil, `orders`, "", "bad_request", 400, `want {"name": "<projection>", "version": N}`},
	{"link retry body malformed", "dm.admin.link.retry", nil, `{}`, "", "bad_request", 400, `want {"name"`},
	{"dead letters with a negative limit", "dm.admin.link.deadletters", nil, `{"name":"l","limit":-1}`, "", "bad_request", 400, `want {"name"`},
	{"replay body malformed", "dm.admin.link.replay", nil, `[]`, "", "bad_request", 400, `want {"name"`},
	{"delete of an unknown kind", "dm.admin.delete", nil, `{"kind":"Widget","name":"w"}`, "", "bad_request", 400, `kind "Widget" cannot be deleted`},
	{"discovery body not JSON", "dm.discovery", nil, `mesh`, "", "bad_request", 400, `the body is optional; if given, want {"mesh": true|false}`},
	{"backup body not JSON", "dm.admin.backup", nil, `big`, "", "bad_request", 400, `the body is optional; if given, want {"chunk_size": <bytes>, "window": <chunks>}`},
	{"restore body not JSON", "dm.admin.restore", nil, `big`, "", "bad_request", 400, `want {"size": <bytes>, "sha256": <hex>}`},
}

// TestBadInputTable sends every bad input of badInputs to a real node and
// checks the reply (status header, code, message) and that nothing was
// stored; then that docs/protocol.md holds the table made from the cases
// (-update rewrites it).
func TestBadInputTable(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxBatch = 2
	n := startNode(t, cfg)
	nc := dial(t, n)
	ctx := context.Background()
	for _, f := range []string{"contracts.yaml", "projection-orders.yaml"} {
		b, err := os.ReadFile("../deploy/examples/orders/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Apply(ctx, b, false); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
	seed := request(t, nc, "dm.append.order.o-1", nats.Header{"ce-type": {"OrderPlaced"}, "ce-id": {"seed-1"}}, `{"customer":"c-1","total":30}`)
	if seed.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("seed append: %s", seed.Data)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, cfg.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	before := stored()
	for _, c := range badInputs {
		t.Run(c.class, func(t *testing.T) {
			checkBadInput(t, nc, c)
			if got := stored(); got != before {
				t.Fatalf("the log holds %d events, %d before: a refused input was stored", got, before)
			}
		})
	}
	checkBadInputDoc(t, "../docs/protocol.md", badInputTable())
}

func checkBadInput(t *testing.T, nc *nats.Conn, c badInput) {
	t.Helper()
	h := nats.Header{}
	for _, kv := range c.headers {
		k, v, _ := strings.Cut(kv, ": ")
		h.Set(k, v)
	}
	resp := request(t, nc, c.subject, h, c.body)
	var er protocol.ErrorReply
	if err := json.Unmarshal(resp.Data, &er); err != nil || er.Error == nil {
		t.Fatalf("reply %.300q is not an error", resp.Data)
	}
	e := er.Error
	if resp.Header.Get(micro.ErrorCodeHeader) != strconv.Itoa(c.status) || e.Status != c.status || e.Code != c.code ||
		!strings.Contains(e.Message, c.message) || resp.Header.Get(micro.ErrorHeader) == "" {
		t.Fatalf("got %s %s %d %q, want %d %s containing %q", resp.Header.Get(micro.ErrorCodeHeader), e.Code, e.Status, e.Message, c.status, c.code, c.message)
	}
}

// Markers of the generated table in docs/protocol.md.
const (
	badInputBegin = "<!-- bad-input table: made by TestBadInputTable (node/badinput_test.go); `go test ./node -run TestBadInputTable -update` rewrites it -->"
	badInputEnd   = "<!-- end of the bad-input table -->"
)

// badInputTable is the markdown table of badInputs.
func badInputTable() string {
	var b strings.Builder
	b.WriteString("| bad input | subject | headers | body | code | status | message contains |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, c := range badInputs {
		var hs []string
		for _, h := range c.headers {
			if k, v, _ := strings.Cut(h, ": "); len(v) > 40 {
				h = fmt.Sprintf("%s: (%d characters)", k, len(v))
			}
			hs = append(hs, codeSpan(h))
		}
		body := codeSpan(c.body)
		if c.show != "" {
			body = c.show
		} else if c.body == "" {
			body = "(empty)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | `%s` | %d | %s |\n", c.class, codeSpan(c.subject),
			strings.Join(hs, "<br>"), body, c.code, c.status, codeSpan(c.message))
	}
	return b.String()
}

// codeSpan is s as inline code in a table cell.
func codeSpan(s string) string {
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", `\n`)
	return "`" + s + "`"
}

// checkBadInputDoc compares the table between the markers in path with
// want, or rewrites it with -update.
func checkBadInputDoc(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, badInputBegin), strings.Index(doc, badInputEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no bad-input table between %q and %q", path, badInputBegin, badInputEnd)
	}
	start := i + len(badInputBegin) + 1
	if doc[start:j] == want {
		return
	}
	if !*updateDocs {
		t.Fatalf("the bad-input table of %s differs from the cases of TestBadInputTable; run\n  go test ./node -run TestBadInputTable -update\nwant:\n%s", path, want)
	}
	if err := os.WriteFile(path, []byte(doc[:start]+want+doc[j:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
