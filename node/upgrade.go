package node

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go/micro"
)

// Subjects of the projection upgrade API.
const (
	SubjectPromote  = "dm.admin.projection.promote"
	SubjectRollback = "dm.admin.projection.rollback"
	SubjectRetire   = "dm.admin.projection.retire"
)

// VersionRequest names a projection version: the body of promote, rollback
// (version unused), retire and retry.
type VersionRequest struct {
	Name    string `json:"name"`
	Version int    `json:"version,omitempty"`
}

// AliasReply says which version of a projection is active after a promote
// or a rollback, and which one was before.
type AliasReply struct {
	Name     string `json:"name"`
	Active   int    `json:"active"`
	Previous int    `json:"previous"`
}

// RetireReply confirms a retired version.
type RetireReply struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Retired bool   `json:"retired"`
}

func decodeVersionRequest(req micro.Request, needVersion bool) (VersionRequest, *Error) {
	var r VersionRequest
	if err := json.Unmarshal(req.Data(), &r); err != nil || r.Name == "" || (needVersion && r.Version <= 0) {
		if needVersion {
			return r, errBadRequest(`body: want {"name": "<projection>", "version": N}`)
		}
		return r, errBadRequest(`body: want {"name": "<projection>"}`)
	}
	return r, nil
}

func (n *Node) handlePromote(req micro.Request) {
	r, e := decodeVersionRequest(req, true)
	if e == nil {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		var prev int
		if prev, e = n.projections.promote(ctx, r.Name, r.Version); e == nil {
			respondJSON(req, AliasReply{Name: r.Name, Active: r.Version, Previous: prev})
			return
		}
	}
	replyError(req, e)
}

func (n *Node) handleRollback(req micro.Request) {
	r, e := decodeVersionRequest(req, false)
	if e == nil {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		var from, to int
		if from, to, e = n.projections.rollback(ctx, r.Name); e == nil {
			respondJSON(req, AliasReply{Name: r.Name, Active: to, Previous: from})
			return
		}
	}
	replyError(req, e)
}

func (n *Node) handleRetire(req micro.Request) {
	r, e := decodeVersionRequest(req, true)
	if e == nil {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		if e = n.projections.retire(ctx, r.Name, r.Version); e == nil {
			respondJSON(req, RetireReply{Name: r.Name, Version: r.Version, Retired: true})
			return
		}
	}
	replyError(req, e)
}
