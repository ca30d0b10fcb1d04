package api

import (
	"encoding/json"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
)

func (a *API) handleMesh(req micro.Request) {
	respondJSON(req, a.deps.Mesh.Status())
}

func (a *API) handleLinkRetry(req micro.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Name == "" {
		replyError(req, badRequest(`want {"name": "<link>"}`))
		return
	}
	if err := a.deps.Mesh.Retry(body.Name); err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, map[string]string{"name": body.Name, "status": "restarted"})
}

func (a *API) handleDelete(req micro.Request) {
	var body protocol.DeleteRequest
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Kind == "" || body.Name == "" {
		replyError(req, badRequest(`want {"kind": "Export" or "Link", "name": "..."}`))
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	// On a cluster: decide on every change stored, through any server.
	err := a.barrier(ctx)
	switch {
	case err != nil:
	case strings.EqualFold(body.Kind, meshlink.KindExport):
		body.Kind, err = meshlink.KindExport, a.deps.Mesh.DeleteExport(ctx, body.Name)
	case strings.EqualFold(body.Kind, meshlink.KindLink):
		body.Kind, err = meshlink.KindLink, a.deps.Mesh.DeleteLink(ctx, body.Name)
	case strings.EqualFold(body.Kind, projection.KindProjection):
		err = badRequest("a projection is removed version by version: `datamesh projection retire %s VERSION` (the active version cannot be retired)", body.Name)
	case strings.EqualFold(body.Kind, schemas.KindEventType):
		err = badRequest("contracts are not deleted: stored events were checked against them; apply a new version instead")
	default:
		err = badRequest("kind %q cannot be deleted; want Export or Link", body.Kind)
	}
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, protocol.DeleteReply{Kind: body.Kind, Name: body.Name, Status: "deleted"})
}

func (a *API) handleDeadLetters(req micro.Request) {
	var body protocol.DeadLettersRequest
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Name == "" || body.Limit < 0 {
		replyError(req, badRequest(`want {"name": "<link>", "after": <export seq>, "limit": <1..1000>}`))
		return
	}
	if body.Limit == 0 {
		body.Limit = 100
	}
	body.Limit = min(body.Limit, 1000)
	ctx, cancel := opContext()
	defer cancel()
	dls, next, err := a.deps.Mesh.DeadLetters(ctx, body.Name, body.After, body.Limit)
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, protocol.DeadLettersReply{Name: body.Name, DeadLetters: dls, Next: next})
}

func (a *API) handleReplay(req micro.Request) {
	var body protocol.ReplayRequest
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Name == "" {
		replyError(req, badRequest(`want {"name": "<link>", "export_seqs": [...]} (no export_seqs: every dead letter)`))
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	r, err := a.deps.Mesh.Replay(ctx, body.Name, body.ExportSeqs)
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, r)
}
