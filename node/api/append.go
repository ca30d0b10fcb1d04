package api

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/tidwall/gjson"

	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/schemas"
)

// handleAppend serves dm.append.<aggregate>.<id>. Checks run in the handler;
// the JetStream ack is awaited off the handler (the log calls back, in
// fsync mode once the event is fsynced), so appends pipeline. An append
// published without a reply subject takes the same path; when it is
// refused, nobody hears the error, so it goes to the rejected record.
func (a *API) handleAppend(req micro.Request) {
	start := a.now()
	if e := a.append(req, start); e != nil {
		// Counted before the reply, so a client that reads the metrics
		// after its answer sees its append in them.
		a.observeAppend(start, e.Code, 0)
		if req.Reply() == "" {
			a.reject(req, e, "")
			return
		}
		replyError(req, e)
	}
}

// append checks an append and hands it to the appender, whose callback
// answers; an error is the answer when the append went no further.
func (a *API) append(req micro.Request, start time.Time) *protocol.Error {
	h := nats.Header(req.Headers())
	agg, id, expected, e := appendTarget(req.Subject(), h)
	if e != nil {
		return e
	}
	if ct := headerValue(h, protocol.HeaderContentType); strings.HasPrefix(strings.ToLower(ct), protocol.ContentTypeBatch) {
		return a.appendBatch(req, agg, id, expected, start)
	}
	m, e := a.prepareOne(agg, id, h, req.Data(), "")
	if e != nil {
		return e
	}
	reply := req.Reply()
	a.deps.Appender.Append(&eventlog.Append{Msg: m, Aggregate: agg, ID: id, Expected: expected,
		Done: func(seq uint64, dup bool, err error) {
			e := a.appended(reply, start, protocol.AppendReply{Seq: seq, Duplicate: dup}, 1, dup, err)
			if e != nil && reply == "" {
				a.reject(req, e, m.Header.Get(protocol.HeaderID))
			}
		}})
	return nil
}

// AppendOnPrefix is the subject prefix of the appends addressed to the node
// on one server of a cluster: <AppendOnPrefix(server)>.<aggregate>.<id>.
// An append on dm.append goes to any server's node (the API is a queue
// group, and nats-server picks a member at random, local or across a
// route); one on this subject is handled on the server named, so a client
// that names the server it is connected to skips two route crossings, and
// each server's node publishes only its own clients' appends, which reach
// the stream's leader in larger groups (docs/performance.md, "Cluster
// appends"). It is answered exactly as dm.append is.
func AppendOnPrefix(server string) string { return protocol.SubjectAppendOn + "." + server }

// handleAppendOn serves <AppendOnPrefix(this server)>.<aggregate>.<id> as
// handleAppend serves dm.append.<aggregate>.<id>: the request is read as if
// sent there, so its errors, metrics and rejected record (which a replay
// sends to any server) are those of dm.append.
func (a *API) handleAppendOn(req micro.Request) {
	rest, ok := strings.CutPrefix(req.Subject(), AppendOnPrefix(a.cfg.Server)+".")
	if !ok {
		replyError(req, protocol.NewError(protocol.CodeBadRequest, "subject %q: want %s.<aggregate>.<id>", req.Subject(), AppendOnPrefix(a.cfg.Server)))
		return
	}
	a.handleAppend(appendOn{Request: req, subject: protocol.SubjectAppend + "." + rest})
}

// appendOn is a request to AppendOnPrefix read as one to dm.append.
type appendOn struct {
	micro.Request
	subject string
}

func (r appendOn) Subject() string { return r.subject }

// appendTarget reads the aggregate and id of an append's subject and its
// expected version.
func appendTarget(subject string, h nats.Header) (agg, id string, expected *uint64, e *protocol.Error) {
	agg, id, e = splitTarget(subject, protocol.SubjectAppend)
	if e == nil && id == "" {
		e = protocol.NewError(protocol.CodeBadRequest, "subject %q: want %s.<aggregate>.<id>", subject, protocol.SubjectAppend)
	}
	if e != nil {
		return "", "", nil, e
	}
	expected, e = parseExpectedVersion(h)
	return agg, id, expected, e
}

// prepareOne reads one event, in binary or structured mode, and checks it
// (contract included) into the message to store. An event without an id
// gets defaultID, when not "".
func (a *API) prepareOne(agg, id string, h nats.Header, body []byte, defaultID string) (*nats.Msg, *protocol.Error) {
	var (
		d *eventlog.Draft
		e *protocol.Error
	)
	if isStructured(h, body) {
		d, e = fromStructuredBody(agg, id, body)
	} else {
		d, e = fromHeaders(h, body)
	}
	if e != nil {
		return nil, e
	}
	if d.ID == "" {
		d.ID = defaultID
	}
	m, err := a.deps.Log.Prepare(agg, id, d)
	if err != nil {
		return nil, WireError(err)
	}
	return m, nil
}

// appended answers an append once the log has: with the error, or with
// the reply for events stored (or found stored: dup), counted first. It
// returns the error answered.
func (a *API) appended(replyTo string, start time.Time, reply any, events int, dup bool, err error) *protocol.Error {
	switch {
	case err != nil:
		e := WireError(err)
		a.observeAppend(start, e.Code, 0)
		a.respondError(replyTo, e)
		return e
	case dup:
		a.observeAppend(start, OutcomeDeduplicated, 0)
	default:
		a.observeAppend(start, OutcomeStored, events)
	}
	a.respond(replyTo, reply)
	return nil
}

// appendBatch stores a JSON array of structured CloudEvents as one
// JetStream atomic batch: all events or none.
func (a *API) appendBatch(req micro.Request, agg, id string, expected *uint64, start time.Time) *protocol.Error {
	msgs, e := a.prepareBatch(agg, id, req.Data())
	if e != nil {
		return e
	}
	reply, count := req.Reply(), len(msgs)
	a.deps.Log.AppendBatch(agg, id, msgs, expected, func(first, last uint64, dup bool, err error) {
		r := protocol.BatchReply{FirstSeq: first, LastSeq: last, Count: count, Duplicate: dup}
		if e := a.appended(reply, start, r, count, dup, err); e != nil && reply == "" {
			a.reject(req, e, "")
		}
	})
	return nil
}

// prepareBatch reads and checks every event of a batch body; an error names
// the event that caused it.
func (a *API) prepareBatch(agg, id string, body []byte) ([]*nats.Msg, *protocol.Error) {
	// json.Valid first: its scanner is iterative and refuses nesting deeper
	// than 10,000; gjson's validator recurses without a limit (a request of
	// a few MB of "[" would overflow the stack).
	if !json.Valid(body) {
		return nil, protocol.NewError(protocol.CodeBadRequest, "a %s body must be a JSON array of CloudEvents", protocol.ContentTypeBatch)
	}
	parsed := gjson.ParseBytes(body)
	if !parsed.IsArray() {
		return nil, protocol.NewError(protocol.CodeBadRequest, "a %s body must be a JSON array of CloudEvents", protocol.ContentTypeBatch)
	}
	raws := parsed.Array()
	if len(raws) == 0 {
		return nil, protocol.NewError(protocol.CodeBadRequest, "the batch is empty")
	}
	if len(raws) > a.cfg.MaxBatch {
		return nil, protocol.NewError(protocol.CodeTooLarge, "the batch has %d events; the limit is %d", len(raws), a.cfg.MaxBatch)
	}
	msgs := make([]*nats.Msg, len(raws))
	seen := map[string]int{}
	for i, raw := range raws {
		d, e := fromStructured(raw, agg, id)
		if e == nil {
			var err error
			if msgs[i], err = a.deps.Log.Prepare(agg, id, d); err != nil {
				e = WireError(err)
			}
		}
		if e == nil && d.ID != "" {
			if j, dup := seen[d.ID]; dup {
				e = protocol.NewError(protocol.CodeBadRequest, "id %q is also used by event %d", d.ID, j)
			}
			seen[d.ID] = i
		}
		if e != nil {
			for k := range e.Violations {
				e.Violations[k].Path = "/" + strconv.Itoa(i) + "/data" + e.Violations[k].Path
			}
			return nil, e.AtIndex(i)
		}
	}
	return msgs, nil
}

func parseExpectedVersion(h nats.Header) (*uint64, *protocol.Error) {
	s := headerValue(h, protocol.HeaderExpectedVersion)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return nil, protocol.NewError(protocol.CodeBadRequest, "%s %q: want the seq of the aggregate's last event, or 0 for a new aggregate", protocol.HeaderExpectedVersion, s)
	}
	return &v, nil
}

// splitTarget reads <aggregate>[.<id>] after the API prefix of subject.
func splitTarget(subject, prefix string) (aggregate, id string, e *protocol.Error) {
	rest := strings.TrimPrefix(subject, prefix+".")
	parts := strings.Split(rest, ".")
	if len(parts) > 2 || !schemas.ValidToken(parts[0]) {
		return "", "", protocol.NewError(protocol.CodeBadRequest, "subject %q: want %s.<aggregate>.<id>", subject, prefix)
	}
	if len(parts) == 2 {
		return parts[0], parts[1], nil
	}
	return parts[0], "", nil
}
