package api

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
)

// defaultReadLimit is how many events a read without a limit returns.
const defaultReadLimit = 1000

// handleRead serves dm.read.<aggregate>[.<id>]. Reads run off the handler
// so that one slow read does not hold up the others.
func (a *API) handleRead(req micro.Request) {
	agg, id, e := splitTarget(req.Subject(), protocol.SubjectRead)
	if e != nil {
		replyError(req, e)
		return
	}
	var rr protocol.ReadRequest
	if body := bytes.TrimSpace(req.Data()); len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rr); err != nil {
			replyError(req, badRequest("read body: %v (want {\"from_seq\": N, \"limit\": L})", err))
			return
		}
	}
	if rr.Limit < 0 || rr.Limit > eventlog.MaxReadLimit {
		replyError(req, badRequest("limit %d: must be between 1 and %d", rr.Limit, eventlog.MaxReadLimit))
		return
	}
	if rr.Limit == 0 {
		rr.Limit = defaultReadLimit
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
