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
	var q projection.Query
	dec := json.NewDecoder(bytes.NewReader(req.Data()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		replyError(req, errBadRequest("query body: %v", err))
		return
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
		_ = req.RespondJSON(res)
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
	_ = req.RespondJSON(ProjectionsReply{Projections: st})
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
	_ = req.RespondJSON(w.Status(head))
}
