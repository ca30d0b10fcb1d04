package api

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"github.com/tidwall/gjson"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/rejected"
	"github.com/datamesh/datamesh/schemas"
)

const (
	// maxRejectedReplay bounds the events one replay handles, so that it
	// answers within the client's timeout; More says to call again.
	maxRejectedReplay = 500
	// rejectedHeadroom is the room a record keeps in a message for the
	// headers it adds; a body that leaves less is dropped (Truncated).
	rejectedHeadroom = 16 << 10
)

// reject records a refused append that was published without a reply
// subject: its subject, headers and body, and the error. eventID is the
// ce-id the log gave it ("" if none: one is made when the event has none),
// so that a replay stores it once.
func (a *API) reject(req micro.Request, e *protocol.Error, eventID string) {
	h := nats.Header(req.Headers())
	m := rejectedMsg(req.Subject(), h, req.Data(), e, a.now())
	typ, id := headerValue(h, protocol.HeaderType), headerValue(h, protocol.HeaderID)
	if typ == "" && id == "" && len(req.Data()) > 0 && req.Data()[0] == '{' && json.Valid(req.Data()) {
		typ, id = gjson.GetBytes(req.Data(), "type").Str, gjson.GetBytes(req.Data(), "id").Str
	}
	if id == "" {
		id = eventID
	}
	if id == "" && !strings.HasPrefix(strings.ToLower(headerValue(h, protocol.HeaderContentType)), protocol.ContentTypeBatch) {
		id = nuid.Next()
	}
	setOneLine(m.Header, rejected.HeaderType, typ)
	setOneLine(m.Header, rejected.HeaderID, id)
	if room := int(a.deps.Conn.MaxPayload()) - rejectedHeadroom; len(m.Data) > room {
		m.Data = nil
		m.Header.Set(rejected.HeaderTruncated, "true")
	}
	a.log.Debug("published append refused: recorded", "subject", req.Subject(), "code", e.Code)
	if a.deps.Rejected == nil {
		a.log.Warn("published append refused, and no rejected record", "subject", req.Subject(), "error", e)
		return
	}
	a.deps.Rejected.Add(m)
}

// rejectedMsg is the record of a refused append: its headers (but those
// that steer JetStream) and body, on dm.rejected.<aggregate>.
func rejectedMsg(subject string, h nats.Header, body []byte, e *protocol.Error, at time.Time) *nats.Msg {
	agg := protocol.RejectedNoAggregate
	if t := strings.Split(strings.TrimPrefix(subject, protocol.SubjectAppend+"."), "."); schemas.ValidToken(t[0]) {
		agg = t[0]
	}
	m := nats.NewMsg(protocol.SubjectRejected + "." + agg)
	for k, vs := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "nats-") || strings.HasPrefix(lk, strings.ToLower(rejected.HeaderPrefix)) {
			continue
		}
		m.Header[k] = vs
	}
	m.Header.Set(rejected.HeaderSubject, subject)
	m.Header.Set(rejected.HeaderError, string(e.Body()))
	m.Header.Set(rejected.HeaderTime, at.UTC().Format(time.RFC3339Nano))
	m.Data = body
	return m
}

func setOneLine(h nats.Header, k, v string) {
	if v != "" && !strings.ContainsAny(v, "\r\n") && len(v) <= 256 {
		h.Set(k, v)
	}
}

// rejectedEvent reads a record as the list shows it.
func rejectedEvent(m *nats.Msg) protocol.RejectedEvent {
	seq, _ := eventlog.MsgSeq(m)
	subject := m.Header.Get(rejected.HeaderSubject)
	ev := protocol.RejectedEvent{Seq: seq, Subject: subject, Aggregate: rejected.Aggregate(m.Header.Get(nats.JSSubject)),
		Type: m.Header.Get(rejected.HeaderType), ID: m.Header.Get(rejected.HeaderID),
		Truncated: m.Header.Get(rejected.HeaderTruncated) == "true"}
	if t := strings.Split(strings.TrimPrefix(subject, protocol.SubjectAppend+"."), "."); len(t) == 2 {
		ev.AggregateID = t[1]
	}
	var er protocol.ErrorReply
	if json.Unmarshal([]byte(m.Header.Get(rejected.HeaderError)), &er) == nil {
		ev.Error = er.Error
	}
	ev.At, _ = time.Parse(time.RFC3339Nano, m.Header.Get(rejected.HeaderTime))
	for k, vs := range m.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") || strings.HasPrefix(k, rejected.HeaderPrefix) || len(vs) == 0 {
			continue
		}
		if ev.Headers == nil {
			ev.Headers = map[string]string{}
		}
		ev.Headers[k] = vs[0]
	}
	if json.Valid(m.Data) {
		ev.Data = json.RawMessage(m.Data)
	} else if len(m.Data) > 0 {
		ev.DataBase64 = m.Data
	}
	return ev
}

// withRejected runs h when the node keeps a rejected record.
func (a *API) withRejected(h micro.HandlerFunc) micro.HandlerFunc {
	return func(req micro.Request) {
		if a.deps.Rejected == nil {
			replyError(req, protocol.NewError(protocol.CodeUnavailable, "this node keeps no rejected record"))
			return
		}
		h(req)
	}
}

func (a *API) handleRejectedList(req micro.Request) {
	var body protocol.RejectedListRequest
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &body); err != nil || body.Limit < 0 ||
			(body.Aggregate != "" && !schemas.ValidToken(body.Aggregate)) {
			replyError(req, badRequest(`want {"aggregate": "<aggregate>", "after": <rejected seq>, "limit": <1..1000>}`))
			return
		}
	}
	if body.Limit == 0 {
		body.Limit = 100
	}
	ctx, cancel := opContext()
	defer cancel()
	msgs, next, err := a.deps.Rejected.List(ctx, body.Aggregate, body.After, min(body.Limit, 1000))
	if err != nil {
		fail(req, err)
		return
	}
	r := protocol.RejectedListReply{Rejected: []protocol.RejectedEvent{}, Next: next}
	for _, m := range msgs {
		r.Rejected = append(r.Rejected, rejectedEvent(m))
	}
	respondJSON(req, r)
}

func (a *API) handleRejectedStatus(req micro.Request) {
	ctx, cancel := opContext()
	defer cancel()
	st, err := a.deps.Rejected.Status(ctx)
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, st)
}

func (a *API) handleRejectedReplay(req micro.Request) {
	var body protocol.RejectedReplayRequest
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &body); err != nil || len(body.Seqs) > maxRejectedReplay ||
			(body.Aggregate != "" && !schemas.ValidToken(body.Aggregate)) {
			replyError(req, badRequest(`want {"seqs": [<rejected seq>, ...]} (at most %d; none: every rejected event), or {"aggregate": "<aggregate>"}`, maxRejectedReplay))
			return
		}
	}
	a.replayMu.Lock() // one replay at a time: two would append the same event twice
	defer a.replayMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	r, err := a.replayRejected(ctx, body)
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, r)
}

// replayRejected appends the rejected events asked for again, each through
// the same checks as a request, once: under its ce-id, which the log is
// searched for first.
func (a *API) replayRejected(ctx context.Context, body protocol.RejectedReplayRequest) (*protocol.RejectedReplayReply, error) {
	r := &protocol.RejectedReplayReply{Replayed: []uint64{}, Failed: []protocol.RejectedEvent{}}
	var msgs []*nats.Msg
	if len(body.Seqs) == 0 {
		var next uint64
		var err error
		if msgs, next, err = a.deps.Rejected.List(ctx, body.Aggregate, 0, maxRejectedReplay); err != nil {
			return nil, err
		}
		r.More = next != 0
	}
	for _, seq := range slices.Compact(slices.Sorted(slices.Values(body.Seqs))) {
		m, err := a.deps.Rejected.Get(ctx, seq)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	for _, m := range msgs {
		ev := rejectedEvent(m)
		if e := a.replayOne(ctx, m, ev.ID); e != nil {
			ev.Error, ev.Data, ev.DataBase64, ev.Headers = e, nil, nil, nil
			r.Failed = append(r.Failed, ev)
			continue
		}
		if err := a.deps.Rejected.Delete(ctx, ev.Seq); err != nil {
			return r, err
		}
		r.Replayed = append(r.Replayed, ev.Seq)
	}
	a.log.Info("rejected events replayed", "replayed", len(r.Replayed), "failed", len(r.Failed))
	return r, nil
}

// replayOne appends the refused event m again; eventID is its ce-id.
func (a *API) replayOne(ctx context.Context, m *nats.Msg, eventID string) *protocol.Error {
	if m.Header.Get(rejected.HeaderTruncated) == "true" {
		return badRequest("the event's body was too large to keep: it cannot be replayed")
	}
	h := m.Header
	subject := h.Get(rejected.HeaderSubject)
	agg, id, expected, e := appendTarget(subject, h)
	if e != nil {
		return e
	}
	if ct := headerValue(h, protocol.HeaderContentType); strings.HasPrefix(strings.ToLower(ct), protocol.ContentTypeBatch) {
		return a.replayBatch(agg, id, expected, m.Data)
	}
	msg, e := a.prepareOne(agg, id, h, m.Data, eventID)
	if e != nil {
		return e
	}
	if expected != nil {
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*expected, 10))
		msg.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, eventlog.AggregateFilter(a.deps.Log.Prefix(), agg, id))
	}
	if err := a.deps.Log.AppendOnce(ctx, msg); err != nil {
		return WireError(err)
	}
	return nil
}

// replayBatch appends a refused batch again, all or none. Its ids
// deduplicate it only within the log's dedup window.
func (a *API) replayBatch(agg, id string, expected *uint64, body []byte) *protocol.Error {
	msgs, e := a.prepareBatch(agg, id, body)
	if e != nil {
		return e
	}
	done := make(chan error, 1)
	a.deps.Log.AppendBatch(agg, id, msgs, expected, func(_, _ uint64, _ bool, err error) { done <- err })
	if err := <-done; err != nil {
		return WireError(err)
	}
	return nil
}
