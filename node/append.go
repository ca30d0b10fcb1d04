package node

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"github.com/tidwall/gjson"
)

// Headers of JetStream's atomic batch publish.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	// errCodeBatchDuplicate is JSAtomicPublishContainsDuplicateMessageErr.
	errCodeBatchDuplicate = 10201
)

// handleAppend serves dm.append.<aggregate>.<id>. Checks run in the handler;
// the JetStream ack is awaited off the handler, so appends pipeline.
func (n *Node) handleAppend(req micro.Request) {
	if n.cfg.AppendDelay > 0 {
		time.Sleep(n.cfg.AppendDelay)
	}
	agg, id, e := splitTarget(req.Subject(), SubjectAppend)
	if e == nil && id == "" {
		e = errBadRequest("subject %q: want %s.<aggregate>.<id>", req.Subject(), SubjectAppend)
	}
	if e != nil {
		replyError(req, e)
		return
	}
	h := nats.Header(req.Headers())
	expected, e := parseExpectedVersion(h)
	if e != nil {
		replyError(req, e)
		return
	}
	if ct := headerValue(h, HeaderContentType); strings.HasPrefix(strings.ToLower(ct), ContentTypeBatch) {
		n.appendBatch(req, agg, id, expected)
		return
	}
	ev, e := fromHeaders(h, req.Data())
	if e != nil {
		replyError(req, e)
		return
	}
	m, e := n.prepare(agg, id, ev)
	if e != nil {
		replyError(req, e)
		return
	}
	if expected != nil {
		n.events.setExpectedVersion(m, agg, id, *expected)
	}
	s := &single{m: m, agg: agg, id: id, expected: expected, reply: req.Reply()}
	if n.committer != nil {
		n.committer.submit(s)
		return
	}
	// os mode: every append in flight at once; JetStream keeps their order.
	n.events.publish(m, func(ack *jetstream.PubAck, err error) { n.finishSingle(s, ack, err) })
}

func parseExpectedVersion(h nats.Header) (*uint64, *Error) {
	s := headerValue(h, HeaderExpectedVersion)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return nil, errBadRequest("%s %q: want the seq of the aggregate's last event, or 0 for a new aggregate", HeaderExpectedVersion, s)
	}
	return &v, nil
}

// prepare checks one event against the node's rules and its contract and
// returns the message to store.
func (n *Node) prepare(agg, id string, ev *incoming) (*nats.Msg, *Error) {
	if !validToken(agg) || !validToken(id) {
		return nil, errBadRequest("aggregate %q and id %q must each be one NATS token", agg, id)
	}
	if e := ev.checkBasics(n.cfg.MaxEventBytes); e != nil {
		return nil, e
	}
	schemaURI := ""
	if v := n.registry.validator(agg, ev.Type); v != nil {
		if violations := v.Validate(ev.Data); len(violations) > 0 {
			return nil, errSchemaViolation(v.Contract().Key(), violations)
		}
		schemaURI = v.Contract().SchemaURI()
	} else if n.cfg.RequireContracts {
		return nil, newError(CodeNoContract, 422, "event type %s.%s has no contract and this node requires one", agg, ev.Type)
	}
	return ev.message(n.cfg, agg, id, schemaURI), nil
}

// appendBatch stores a JSON array of structured CloudEvents as one
// JetStream atomic batch: all events or none.
func (n *Node) appendBatch(req micro.Request, agg, id string, expected *uint64) {
	// json.Valid first: its scanner is iterative and refuses nesting deeper
	// than 10,000; gjson's validator recurses without a limit (a request of
	// a few MB of "[" would overflow the stack).
	if !json.Valid(req.Data()) {
		replyError(req, errBadRequest("a %s body must be a JSON array of CloudEvents", ContentTypeBatch))
		return
	}
	body := gjson.ParseBytes(req.Data())
	if !body.IsArray() {
		replyError(req, errBadRequest("a %s body must be a JSON array of CloudEvents", ContentTypeBatch))
		return
	}
	raws := body.Array()
	if len(raws) == 0 {
		replyError(req, errBadRequest("the batch is empty"))
		return
	}
	if len(raws) > n.cfg.MaxBatch {
		replyError(req, errTooLarge("the batch has %d events; the limit is %d", len(raws), n.cfg.MaxBatch))
		return
	}
	msgs := make([]*nats.Msg, len(raws))
	seen := map[string]int{}
	for i, raw := range raws {
		ev, e := fromStructured(raw)
		if e == nil {
			msgs[i], e = n.prepare(agg, id, ev)
		}
		if e == nil && ev.ID != "" {
			if j, dup := seen[ev.ID]; dup {
				e = errBadRequest("id %q is also used by event %d", ev.ID, j)
			}
			seen[ev.ID] = i
		}
		if e != nil {
			for k := range e.Violations {
				e.Violations[k].Path = "/" + strconv.Itoa(i) + "/data" + e.Violations[k].Path
			}
			replyError(req, e.atIndex(i))
			return
		}
	}
	batchID := nuid.Next()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, batchID)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
	}
	last := msgs[len(msgs)-1]
	last.Header.Set(hdrBatchCommit, "1")
	if expected != nil {
		n.events.setExpectedVersion(msgs[0], agg, id, *expected)
	}
	// Staged messages need no reply: the commit's ack answers for the batch,
	// and a batch with a missing message is refused whole at commit.
	for _, m := range msgs[:len(msgs)-1] {
		if err := n.nc.PublishMsg(m); err != nil {
			replyError(req, errUnavailable("stage batch: %v", err))
			return
		}
	}
	reply, count := req.Reply(), len(msgs)
	n.events.publish(last, func(ack *jetstream.PubAck, err error) {
		if err == nil {
			n.respond(reply, BatchReply{FirstSeq: ack.Sequence - uint64(count) + 1, LastSeq: ack.Sequence, Count: count})
			return
		}
		first, last, e := n.resolveRefused(agg, id, msgs, expected, err)
		if e != nil {
			n.respondError(reply, e)
			return
		}
		n.respond(reply, BatchReply{FirstSeq: first, LastSeq: last, Count: count, Duplicate: true})
	})
}

// findStored looks for events with exactly these ids, in a row, among the
// aggregate's events from seq from on. It is how a retry that JetStream
// refuses (a batch with a known id, or a retry whose expected version has
// moved on because the first try succeeded) is recognised as a duplicate.
func (l *eventLog) findStored(agg, id string, ids []string, from uint64) (first, last uint64, found bool, err error) {
	var run []Event
	for {
		page, next, err := l.read(l.aggregateSubject(agg, id), from, maxReadLimit)
		if err != nil {
			return 0, 0, false, err
		}
		for _, ev := range page {
			if len(run) == 0 && ev.ID != ids[0] {
				continue
			}
			if ev.ID != ids[len(run)] {
				return 0, 0, false, nil
			}
			if run = append(run, ev); len(run) == len(ids) {
				return run[0].Seq, ev.Seq, true, nil
			}
		}
		if next == 0 {
			return 0, 0, false, nil
		}
		from = next
	}
}

// clientIDs returns the ce-ids the client gave, or nil if any event has none.
func clientIDs(msgs []*nats.Msg) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		if ids[i] = m.Header.Get(nats.MsgIdHdr); ids[i] == "" {
			return nil
		}
	}
	return ids
}

// resolveRefused turns a refused write into a duplicate reply when every
// event is already stored; otherwise it returns the refusal as an API error.
func (n *Node) resolveRefused(agg, id string, msgs []*nats.Msg, expected *uint64, err error) (first, last uint64, e *Error) {
	e = publishError(err, expected)
	apiErr, ok := err.(*jetstream.APIError)
	isDup := ok && apiErr.ErrorCode == errCodeBatchDuplicate
	if isDup {
		e = newError(CodeDuplicate, 409, "some event ids of this batch are already stored, but not as this same batch; a batch is stored whole or not at all")
	}
	ids := clientIDs(msgs)
	if ids == nil || (!isDup && e.Code != CodeVersionConflict) {
		return 0, 0, e
	}
	var from uint64
	if expected != nil && !isDup {
		from = *expected + 1
	}
	first, last, found, ferr := n.events.findStored(agg, id, ids, from)
	if ferr != nil {
		return 0, 0, errUnavailable("check for duplicates: %v", ferr)
	}
	if !found {
		return 0, 0, e
	}
	return first, last, nil
}
