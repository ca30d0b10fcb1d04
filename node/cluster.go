package node

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/projection"
)

// registryWatch keeps a clustered server in line with the resources the
// other servers apply: contracts, projection versions and active aliases
// (docs/cluster.md). It follows the registry bucket's stream, in order,
// never reading a value a lagging replica could serve.
type registryWatch struct {
	reg         *registry.Registry
	projections *projection.Manager
	mesh        registry.MeshFollower
	cancel      context.CancelFunc
	done        <-chan struct{}
}

// readyWait bounds how long Start waits for the watch to deliver the
// bucket's current values.
const readyWait = time.Minute

func (w *registryWatch) Start(ctx context.Context) error {
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	ready := make(chan struct{})
	done, err := w.reg.Watch(run, w.projections, w.mesh, ready)
	if err != nil {
		return err
	}
	w.done = done
	// The values stored before: what another server applied while this
	// one was down.
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(readyWait):
		return fmt.Errorf("registry watch: the current resources did not arrive in %v", readyWait)
	}
}

// Close stops the watch and waits for the change under way.
func (w *registryWatch) Close() error {
	if w.cancel != nil {
		w.cancel()
	}
	if w.done != nil {
		<-w.done
	}
	return nil
}

// servers lists the servers of a clustered node (this one and the other
// members of JetStream's meta group, online or not), sorted; nil
// standalone.
func (n *Node) servers() func() []string {
	if !n.cfg.clustered() {
		return nil
	}
	return func() []string {
		s := n.srv.NATS()
		names := []string{s.Name()}
		if jsz, err := s.Jsz(nil); err == nil && jsz.Meta != nil {
			for _, r := range jsz.Meta.Replicas {
				names = append(names, r.Name)
			}
		}
		sort.Strings(names)
		return names
	}
}

// barrier is the registry's Barrier on a clustered node, nil standalone.
func (n *Node) barrier() func(ctx context.Context) error {
	if !n.cfg.clustered() {
		return nil
	}
	return n.registry.Barrier
}
