package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/tidwall/gjson"

	"github.com/datamesh/datamesh/projection"
)

const (
	defaultWaitMS = 5000
	maxWaitMS     = 60000
)

// handleQuery serves dm.query.<projection>[.v<version>]. Queries run off
// the handler: one waiting for its min_seq must not hold up the others.
func (n *Node) handleQuery(req micro.Request) {
	rest := strings.TrimPrefix(req.Subject(), SubjectQuery+".")
	parts := strings.Split(rest, ".")
	q, ok := decodeSimpleQuery(req.Data())
	if !ok {
		dec := json.NewDecoder(bytes.NewReader(req.Data()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			replyError(req, errBadRequest("query body: %v", err))
			return
		}
	}
	if len(parts) == 2 {
		v, err := strconv.Atoi(strings.TrimPrefix(parts[1], "v"))
		if err != nil || !strings.HasPrefix(parts[1], "v") {
			replyError(req, errBadRequest("subject %q: want %s.<projection>[.v<version>]", req.Subject(), SubjectQuery))
			return
		}
		q.Version = v
	} else if len(parts) != 1 {
		replyError(req, errBadRequest("subject %q: want %s.<projection>[.v<version>]", req.Subject(), SubjectQuery))
		return
	}
	w, _, e := n.projections.worker(parts[0], q.Version)
	if e != nil {
		replyError(req, e)
		return
	}
	if err := q.Check(w.Spec()); err != nil {
		replyError(req, queryError(err, w))
		return
	}
	if q.MinSeq == 0 || q.MinSeq <= w.Applied() {
		// Nothing to wait for: answer in the handler, without a goroutine.
		res, err := w.Query(context.Background(), &q)
		if err != nil {
			replyError(req, queryError(err, w))
			return
		}
		b, err := encodeResult(res)
		if err != nil {
			replyError(req, errInternal("encode answer: %v", err))
			return
		}
		respondBytes(req, b)
		return
	}
	wait := q.TimeoutMS
	if wait == 0 {
		wait = defaultWaitMS
	}
	wait = min(wait, maxWaitMS)
	reply := req.Reply()
	n.events.pending.Add(1)
	go func() {
		defer n.events.pending.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(wait)*time.Millisecond)
		defer cancel()
		res, err := w.Query(ctx, &q)
		if err != nil {
			n.respondError(reply, queryError(err, w))
			return
		}
		n.respond(reply, res)
	}()
}

// decodeSimpleQuery reads the common bodies, a get and its options
// ({"get": "o-1", "min_seq": 42}), with gjson instead of encoding/json's
// reflection (see docs/performance.md). It reports false for anything else,
// valid or not, which the strict decoder then reads (and explains).
func decodeSimpleQuery(body []byte) (projection.Query, bool) {
	var q projection.Query
	if !json.Valid(body) { // not gjson.ValidBytes: see appendBatch
		return q, false
	}
	r := gjson.ParseBytes(body)
	if !r.IsObject() {
		return q, false
	}
	ok := true
	r.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "get":
			if v.Type != gjson.String {
				ok = false
			}
			s := v.Str
			q.Get = &s
		case "at_seq", "min_seq":
			n, err := strconv.ParseUint(v.Raw, 10, 64)
			if v.Type != gjson.Number || err != nil {
				ok = false
			}
			if k.Str == "at_seq" {
				q.AtSeq = n
			} else {
				q.MinSeq = n
			}
		case "timeout_ms", "version":
			n, err := strconv.Atoi(v.Raw)
			if v.Type != gjson.Number || err != nil {
				ok = false
			}
			if k.Str == "timeout_ms" {
				q.TimeoutMS = n
			} else {
				q.Version = n
			}
		default:
			ok = false
		}
		return ok
	})
	return q, ok && q.Get != nil
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

// queryError maps a projection error to an API error.
func queryError(err error, w *projection.Worker) *Error {
	var qe *projection.QueryError
	if errors.As(err, &qe) {
		if qe.Code == CodeNotFound {
			return newError(CodeNotFound, 404, "%s", qe.Msg)
		}
		return errBadRequest("%s", qe.Msg)
	}
	if errors.Is(err, projection.ErrNotUpToDate) {
		e := newError(CodeNotUpToDate, 504, "%v", err)
		seq := w.Applied()
		e.Seq = &seq
		return e
	}
	return errUnavailable("query: %v", err)
}

// ProjectionsReply answers dm.admin.projections.
type ProjectionsReply struct {
	Projections []projection.Status `json:"projections"`
}

func (n *Node) handleProjections(req micro.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	st := n.projections.statuses(ctx)
	if st == nil {
		st = []projection.Status{}
	}
	respondJSON(req, ProjectionsReply{Projections: st})
}

func (n *Node) handleRetry(req micro.Request) {
	r, e := decodeVersionRequest(req, false)
	if e != nil {
		replyError(req, e)
		return
	}
	w, _, e := n.projections.worker(r.Name, r.Version)
	if e != nil {
		replyError(req, e)
		return
	}
	if err := w.Retry(); err != nil {
		replyError(req, newError(CodeConflict, 409, "%v", err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	head, _ := n.events.head(ctx)
	respondJSON(req, w.Status(head))
}
