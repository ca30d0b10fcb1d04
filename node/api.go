package node

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

const apiTimeout = 10 * time.Second

// startService registers the API endpoints as the NATS micro service
// "datamesh", so $SRV.PING/INFO/STATS describe them.
func (n *Node) startService() error {
	svc, err := micro.AddService(n.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "DataMesh node " + n.cfg.Name + ": event log, contracts, projections, discovery",
		Metadata:    map[string]string{"node": n.cfg.Name},
	})
	if err != nil {
		return err
	}
	n.svc = svc
	endpoints := []struct {
		name, subject string
		h             micro.HandlerFunc
	}{
		{"append", SubjectAppend + ".>", n.handleAppend},
		{"read", SubjectRead + ".>", n.handleRead},
		{"apply", SubjectApply, n.handleApply},
		{"discovery", SubjectDiscovery, n.handleDiscovery},
		{"query", SubjectQuery + ".>", n.handleQuery},
		{"projections", SubjectProjections, n.handleProjections},
		{"retry", SubjectRetry, n.handleRetry},
		{"promote", SubjectPromote, n.handlePromote},
		{"rollback", SubjectRollback, n.handleRollback},
		{"retire", SubjectRetire, n.handleRetire},
		{"mesh", SubjectMesh, n.handleMesh},
		{"link-retry", SubjectLinkRetry, n.handleLinkRetry},
		{"dead-letters", SubjectDeadLetters, n.handleDeadLetters},
		{"replay", SubjectReplay, n.handleReplay},
		{"delete", SubjectDelete, n.handleDelete},
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, n.gated(e.h), micro.WithEndpointSubject(e.subject)); err != nil {
			return err
		}
	}
	return nil
}

// gated runs h unless the node is closing, in which case the request gets
// an unavailable error.
func (n *Node) gated(h micro.HandlerFunc) micro.HandlerFunc {
	return func(req micro.Request) {
		if !n.gate.TryRLock() {
			replyError(req, errUnavailable("the node is shutting down"))
			return
		}
		defer n.gate.RUnlock()
		h(req)
	}
}

// respondJSON answers req with v (see respondBytes).
func respondJSON(req micro.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		replyError(req, errInternal("encode reply: %v", err))
		return
	}
	respondBytes(req, b)
}

// respondBytes answers req with b, or with an error reply when b cannot be
// sent: never with silence.
func respondBytes(req micro.Request, b []byte) {
	if err := req.Respond(b); err != nil {
		replyError(req, replyFailed(err))
	}
}

// replyFailed is the error answer to a reply that could not be sent.
func replyFailed(err error) *Error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return errTooLarge("the reply is larger than the server's max payload; ask for less (a limit, a page)")
	}
	return errUnavailable("reply: %v", err)
}

// replyError answers a request synchronously, inside its handler, so the
// micro service counts the error in its stats.
func replyError(req micro.Request, e *Error) {
	_ = req.Error(e.statusText(), e.Message, e.body(), micro.WithHeaders(micro.Headers{"Content-Type": {"application/json"}}))
}

// respond answers a request from outside its handler (after an async ack).
func (n *Node) respond(reply string, v any) {
	if reply == "" {
		return
	}
	var b []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		b, err = m.MarshalJSON() // encoding/json would look its type up first
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		n.respondError(reply, errInternal("encode reply: %v", err))
		return
	}
	if err := n.nc.Publish(reply, b); err != nil {
		n.respondError(reply, replyFailed(err))
	}
}

// respondError sends an error reply with the micro error headers from outside a handler.
func (n *Node) respondError(reply string, e *Error) {
	if reply == "" {
		return
	}
	m := &nats.Msg{Subject: reply, Data: e.body(), Header: nats.Header{
		micro.ErrorHeader:     {e.Message},
		micro.ErrorCodeHeader: {e.statusText()},
		"Content-Type":        {"application/json"},
	}}
	if err := n.nc.PublishMsg(m); err != nil {
		n.log.Warn("error reply failed", "error", err)
	}
}

// splitTarget reads <aggregate>[.<id>] after the API prefix of subject.
func splitTarget(subject, prefix string) (aggregate, id string, e *Error) {
	rest := strings.TrimPrefix(subject, prefix+".")
	parts := strings.Split(rest, ".")
	if len(parts) > 2 || !validToken(parts[0]) {
		return "", "", errBadRequest("subject %q: want %s.<aggregate>.<id>", subject, prefix)
	}
	if len(parts) == 2 {
		return parts[0], parts[1], nil
	}
	return parts[0], "", nil
}

func (n *Node) handleApply(req micro.Request) {
	force, err := parseBool(headerValue(nats.Header(req.Headers()), HeaderForce))
	if err != nil {
		replyError(req, errBadRequest("%s: %v", HeaderForce, err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	res, e := n.apply(ctx, req.Data(), force)
	if e != nil {
		replyError(req, e)
		return
	}
	respondJSON(req, ApplyReply{Results: res})
}

func (n *Node) handleMesh(req micro.Request) {
	respondJSON(req, n.mesh.status())
}

// MeshStatus returns every link's and export's status, as dm.admin.mesh does.
func (n *Node) MeshStatus() MeshStatus { return n.mesh.status() }

func (n *Node) handleLinkRetry(req micro.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(req.Data(), &body); err != nil || body.Name == "" {
		replyError(req, errBadRequest(`want {"name": "<link>"}`))
		return
	}
	if e := n.mesh.retry(body.Name); e != nil {
		replyError(req, e)
		return
	}
	respondJSON(req, map[string]string{"name": body.Name, "status": "restarted"})
}
