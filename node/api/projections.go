package api

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

func (a *API) handleProjections(req micro.Request) {
	ctx, cancel := opContext()
	defer cancel()
	st := a.deps.Projections.Statuses(ctx)
	if st == nil {
		st = []projection.Status{}
	}
	r := protocol.ProjectionsReply{Projections: st, Server: a.cfg.Server}
	if a.cfg.Servers != nil {
		r.Servers = a.cfg.Servers()
	}
	respondJSON(req, r)
}

func decodeVersionRequest(req micro.Request, needVersion bool) (protocol.VersionRequest, *protocol.Error) {
	var r protocol.VersionRequest
	if err := json.Unmarshal(req.Data(), &r); err != nil || r.Name == "" || (needVersion && r.Version <= 0) {
		if needVersion {
			return r, badRequest(`body: want {"name": "<projection>", "version": N}`)
		}
		return r, badRequest(`body: want {"name": "<projection>"}`)
	}
	return r, nil
}

func (a *API) handleRetry(req micro.Request) {
	r, e := decodeVersionRequest(req, false)
	if e != nil {
		replyError(req, e)
		return
	}
	w, _, err := a.deps.Projections.Worker(r.Name, r.Version)
	if err != nil {
		fail(req, err)
		return
	}
	if err := w.Retry(); err != nil {
		fail(req, err)
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	head, _ := a.deps.Log.Head(ctx)
	respondJSON(req, w.Status(head))
}

func (a *API) handlePromote(req micro.Request) {
	r, e := decodeVersionRequest(req, true)
	if e != nil {
		replyError(req, e)
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := a.barrier(ctx); err != nil {
		fail(req, err)
		return
	}
	prev, err := a.deps.Projections.Promote(ctx, r.Name, r.Version)
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, protocol.AliasReply{Name: r.Name, Active: r.Version, Previous: prev})
}

func (a *API) handleRollback(req micro.Request) {
	r, e := decodeVersionRequest(req, false)
	if e != nil {
		replyError(req, e)
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := a.barrier(ctx); err != nil {
		fail(req, err)
		return
	}
	from, to, err := a.deps.Projections.Rollback(ctx, r.Name)
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, protocol.AliasReply{Name: r.Name, Active: to, Previous: from})
}

func (a *API) handleRetire(req micro.Request) {
	r, e := decodeVersionRequest(req, true)
	if e != nil {
		replyError(req, e)
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := a.barrier(ctx); err != nil {
		fail(req, err)
		return
	}
	if err := a.deps.Projections.Retire(ctx, r.Name, r.Version); err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, protocol.RetireReply{Name: r.Name, Version: r.Version, Retired: true})
}

// barrier waits, on a clustered node, until this server knows every
// resource change stored through any server (Deps.Barrier).
func (a *API) barrier(ctx context.Context) error {
	if a.deps.Barrier == nil {
		return nil
	}
	return a.deps.Barrier(ctx)
}
