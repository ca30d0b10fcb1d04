package api

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
)

func (a *API) handleApply(req micro.Request) {
	force, err := parseBool(headerValue(nats.Header(req.Headers()), protocol.HeaderForce))
	if err != nil {
		replyError(req, badRequest("%s: %v", protocol.HeaderForce, err))
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	res, err := a.deps.Apply(ctx, req.Data(), force)
	if err != nil {
		fail(req, err)
		return
	}
	respondJSON(req, protocol.ApplyReply{Results: res})
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}
