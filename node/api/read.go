package api

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/schemas"
)

// defaultReadLimit is how many events a read without a limit returns.
const defaultReadLimit = 1000

// handleRead serves dm.read.<aggregate>[.<id>]. Reads run off the handler
// so that one slow read does not hold up the others.
func (a *API) handleRead(req micro.Request) {
	agg, id, rr, e := decodeRead(req.Subject(), req.Data())
	if e != nil {
		replyError(req, e)
		return
	}
	filter := eventlog.AggregateFilter(a.deps.Log.Prefix(), agg, id)
	reply := req.Reply()
	a.goAnswer(func() {
		records, next, err := a.deps.Log.Read(context.Background(), filter, rr.FromSeq, rr.Limit)
		if err != nil {
			a.respondError(reply, protocol.NewError(protocol.CodeUnavailable, "read: %v", err))
			return
		}
		events := make([]protocol.Event, len(records))
		for i, r := range records {
			events[i] = protocol.EventFromRecord(r)
		}
		a.respond(reply, protocol.ReadReply{Events: events, NextSeq: next})
	})
}

// decodeRead reads a read request: the aggregate (and id) of its subject,
// and its optional body with the limit checked and defaulted.
func decodeRead(subject string, body []byte) (agg, id string, rr protocol.ReadRequest, e *protocol.Error) {
	if agg, id, e = splitTarget(subject, protocol.SubjectRead); e != nil {
		return "", "", rr, e
	}
	if id != "" && !schemas.ValidToken(id) {
		return "", "", rr, badRequest("subject %q: the id %q is not one NATS token (no spaces, '.', '*' or '>')", subject, id)
	}
	if body := bytes.TrimSpace(body); len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rr); err != nil {
			return "", "", rr, badRequest("read body: %v (want {\"from_seq\": N, \"limit\": L})", err)
		}
	}
	if rr.Limit < 0 || rr.Limit > eventlog.MaxReadLimit {
		return "", "", rr, badRequest("limit %d: must be between 1 and %d", rr.Limit, eventlog.MaxReadLimit)
	}
	if rr.Limit == 0 {
		rr.Limit = defaultReadLimit
	}
	return agg, id, rr, nil
}
