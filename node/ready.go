package node

import (
	"context"
	"fmt"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/monitor"
	"github.com/datamesh/datamesh/projection"
)

// readiness is what /readyz answers: the node is ready when its API takes
// requests, every active projection version is live (queries without a
// version answer from it) and every link is connected and importing.
func (n *Node) readiness(ctx context.Context) monitor.Readiness {
	var not []string
	if !n.api.Serving() {
		not = append(not, "api: not serving")
	}
	for _, st := range n.projections.Statuses(ctx) {
		if !st.Active || st.State == projection.StateLive {
			continue
		}
		reason := fmt.Sprintf("projection %s v%d: %s (applied %d of %d)", st.Name, st.Version, st.State, st.Applied, st.Head)
		if st.LastError != "" {
			reason += ": " + st.LastError
		}
		not = append(not, reason)
	}
	for _, l := range n.mesh.Status().Links {
		switch {
		case l.State == meshlink.LinkFailed:
			not = append(not, fmt.Sprintf("link %s: failed: %s", l.Name, l.LastError))
		case !l.Connected:
			not = append(not, fmt.Sprintf("link %s: peer %s not connected", l.Name, l.Peer))
		}
	}
	return monitor.Readiness{Ready: len(not) == 0, NotReady: not}
}
