package api

import (
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
)

// On a cluster one server runs the links and exports (meshlink.Mesh's
// Activate). What only it knows (their live status) or may do (restart a
// link, replay its dead letters) is asked of it: the others forward
// those requests to dm.admin.runner.<endpoint>, which a second micro
// service answers on that server alone while it runs the mesh.

// runnerService is the micro service of the server that runs the mesh.
type runnerService struct {
	mu  sync.Mutex
	svc micro.Service
}

// runnerEndpoints are the requests only the server that runs the mesh
// answers, by endpoint name (the last token of their runner subject).
func (a *API) runnerEndpoints() []endpoint {
	return []endpoint{
		{"mesh", protocol.SubjectRunner + ".mesh", a.handleMesh},
		{"link-retry", protocol.SubjectRunner + ".link-retry", a.handleLinkRetry},
		{"replay", protocol.SubjectRunner + ".replay", a.handleReplay},
	}
}

// ServeRunner starts (on) or stops answering as the server that runs the
// mesh. The node calls it as the mesh is activated and deactivated.
func (a *API) ServeRunner(on bool) error {
	a.runner.mu.Lock()
	defer a.runner.mu.Unlock()
	if !on {
		if a.runner.svc == nil {
			return nil
		}
		err := a.runner.svc.Stop()
		a.runner.svc = nil
		return err
	}
	if a.runner.svc != nil {
		return nil
	}
	svc, err := micro.AddService(a.deps.Conn, micro.Config{
		Name:        protocol.ServiceName + "-mesh",
		Version:     protocol.Version,
		Description: "The server of DataMesh node " + a.cfg.Node + " that runs its links and exports",
		Metadata:    map[string]string{"node": a.cfg.Node, "server": a.cfg.Server},
	})
	if err != nil {
		return err
	}
	for _, e := range a.runnerEndpoints() {
		if err := svc.AddEndpoint(e.name, a.gated(e.h), micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			return err
		}
	}
	a.runner.svc = svc
	return a.deps.Conn.Flush()
}

// onRunner answers req with h where the mesh runs (always standalone), and
// elsewhere forwards it to the server that runs it and relays its answer.
func (a *API) onRunner(name string, h micro.HandlerFunc) micro.HandlerFunc {
	return func(req micro.Request) {
		if a.deps.Mesh.Active() {
			h(req)
			return
		}
		msg := &nats.Msg{Subject: protocol.SubjectRunner + "." + name, Data: req.Data(), Header: nats.Header(req.Headers())}
		resp, err := a.deps.Conn.RequestMsg(msg, opTimeout+opTimeout/2)
		if errors.Is(err, nats.ErrNoResponders) {
			replyError(req, protocol.NewError(protocol.CodeUnavailable,
				"no server of the cluster runs the links and exports at this moment (the event stream is electing its leader): retry"))
			return
		}
		if err != nil {
			replyError(req, protocol.NewError(protocol.CodeUnavailable, "ask the server that runs the links and exports: %v", err))
			return
		}
		if err := req.Respond(resp.Data, micro.WithHeaders(micro.Headers(resp.Header))); err != nil {
			replyError(req, replyFailed(err))
		}
	}
}
