package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/micro"
	"github.com/tidwall/gjson"

	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

const (
	defaultWaitMS = 5000
	maxWaitMS     = 60000
)

// handleQuery serves dm.query.<projection>[.v<version>]. A query that must
// wait for its min_seq runs off the handler: it must not hold up the others.
func (a *API) handleQuery(req micro.Request) {
	start := a.now()
	if name, e := a.query(req, start); e != nil {
		// Counted before the reply, so a client that reads the metrics
		// after its answer sees its query in them.
		a.observeQuery(start, name, e.Code, false)
		replyError(req, e)
	}
}

// query answers a query in the handler, or hands it to a goroutine that
// waits for its min_seq and answers. An error is the answer when the query
// went no further; name is then the projection's name if it exists.
func (a *API) query(req micro.Request, start time.Time) (name string, e *protocol.Error) {
	name, q, e := decodeQuery(req.Subject(), req.Data())
	if e != nil {
		return "", e
	}
	w, _, err := a.deps.Projections.Worker(name, q.Version)
	if err != nil {
		if errors.Is(err, projection.ErrNotFound) {
			name = ""
		}
		return name, WireError(err)
	}
	if err := q.Check(w.Spec()); err != nil {
		return name, queryError(err, w)
	}
	if q.MinSeq == 0 || q.MinSeq <= w.Applied() {
		// Nothing to wait for: answer in the handler, without a goroutine.
		res, err := w.Query(context.Background(), &q)
		if err != nil {
			return name, queryError(err, w)
		}
		b, err := encodeResult(res)
		if err != nil {
			return name, protocol.NewError(protocol.CodeInternal, "encode answer: %v", err)
		}
		a.observeQuery(start, name, OutcomeOK, false)
		respondBytes(req, b)
		return name, nil
	}
	wait := q.TimeoutMS
	if wait == 0 {
		wait = defaultWaitMS
	}
	wait = min(wait, maxWaitMS)
	reply := req.Reply()
	a.goAnswer(func() {
		ctx, cancel := context.WithTimeout(a.ctx, time.Duration(wait)*time.Millisecond)
		defer cancel()
		res, err := w.Query(ctx, &q)
		if err != nil {
			e := queryError(err, w)
			a.observeQuery(start, name, e.Code, true)
			a.respondError(reply, e)
			return
		}
		a.observeQuery(start, name, OutcomeOK, true)
		a.respond(reply, res)
	})
	return name, nil
}

// decodeQuery reads the projection's name and the query from a request.
func decodeQuery(subject string, body []byte) (string, projection.Query, *protocol.Error) {
	parts := strings.Split(strings.TrimPrefix(subject, protocol.SubjectQuery+"."), ".")
	q, ok := decodeSimpleQuery(body)
	if !ok {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			return "", q, badRequest("query body: %v", err)
		}
	}
	if len(parts) == 2 {
		v, err := strconv.Atoi(strings.TrimPrefix(parts[1], "v"))
		if err != nil || !strings.HasPrefix(parts[1], "v") {
			return "", q, badRequest("subject %q: want %s.<projection>[.v<version>]", subject, protocol.SubjectQuery)
		}
		q.Version = v
	} else if len(parts) != 1 {
		return "", q, badRequest("subject %q: want %s.<projection>[.v<version>]", subject, protocol.SubjectQuery)
	}
	return parts[0], q, nil
}

// decodeSimpleQuery reads the common bodies, a get and its options
// ({"get": "o-1", "min_seq": 42}), with gjson instead of encoding/json's
// reflection (see docs/performance.md). It reports false for anything else,
// valid or not, which the strict decoder then reads (and explains).
func decodeSimpleQuery(body []byte) (projection.Query, bool) {
	var q projection.Query
	if !json.Valid(body) { // not gjson.ValidBytes: see prepareBatch
		return q, false
	}
	r := gjson.ParseBytes(body)
	if !r.IsObject() {
		return q, false
	}
	ok := true
	r.ForEach(func(k, v gjson.Result) bool {
		ok = simpleQueryField(&q, k.Str, v)
		return ok
	})
	return q, ok && q.Get != nil
}

// simpleQueryField sets one field of a simple query; false if it is not one.
func simpleQueryField(q *projection.Query, k string, v gjson.Result) bool {
	switch k {
	case "get":
		s := v.Str
		q.Get = &s
		// Invalid UTF-8 goes to the strict decoder, which reads it as
		// U+FFFD (FuzzDecodeQuery): both paths must read the same key.
		return v.Type == gjson.String && utf8.ValidString(s)
	case "at_seq", "min_seq":
		n, err := strconv.ParseUint(v.Raw, 10, 64)
		if k == "at_seq" {
			q.AtSeq = n
		} else {
			q.MinSeq = n
		}
		return v.Type == gjson.Number && err == nil
	case "timeout_ms", "version":
		n, err := strconv.Atoi(v.Raw)
		if k == "timeout_ms" {
			q.TimeoutMS = n
		} else {
			q.Version = n
		}
		return v.Type == gjson.Number && err == nil
	}
	return false
}

// encodeResult encodes a get's answer without reflection; other answers go
// through encoding/json. The document is stored as compact JSON, so it is
// copied as it is (encoding/json would also escape <, > and & in it).
func encodeResult(r *projection.Result) ([]byte, error) {
	if r.Docs != nil || r.Next != nil || r.Count != nil || r.History != nil || !plainString(r.Key) {
		return json.Marshal(r)
	}
	b := make([]byte, 0, 32+len(r.Key)+len(r.Doc))
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	if r.Key != "" {
		b = append(b, `,"key":"`...)
		b = append(b, r.Key...)
		b = append(b, '"')
	}
	if len(r.Doc) > 0 {
		b = append(b, `,"doc":`...)
		b = append(b, r.Doc...)
	}
	return append(b, '}'), nil
}

// plainString reports whether s needs no escaping in JSON.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// queryError is the error reply to a failed query; not_up_to_date carries
// the seq the projection has applied.
func queryError(err error, w *projection.Worker) *protocol.Error {
	e := WireError(err)
	switch {
	case errors.Is(err, projection.ErrNotUpToDate):
		seq := w.Applied()
		e.Seq = &seq
	case e.Code == protocol.CodeInternal:
		e = protocol.NewError(protocol.CodeUnavailable, "query: %v", err)
	}
	return e
}
