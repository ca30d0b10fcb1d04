package node

import (
	"context"
	"time"

	"github.com/datamesh/datamesh/node/embed"
)

// meshRunnerPoll is how often a server of a cluster looks whether it leads
// the event stream.
const meshRunnerPoll = 200 * time.Millisecond

// meshRunner makes the server that leads the event stream (JetStream's
// RAFT election, replicated with the log) the one that runs the node's
// links and exports: they read and append the log there without a hop,
// and when that server dies the stream's new leader takes them over. The
// registry's watch has told every server of every export and link, so the
// new runner first waits until it has seen every change stored
// (Registry.Barrier), then runs them from their replicated state: export
// streams resume after their last copy, links from their checkpoint and
// the log (docs/cluster.md, "Links and exports").
type meshRunner struct {
	n      *Node
	cancel context.CancelFunc
	done   chan struct{}
	active bool // only the loop's goroutine uses it, then Close
}

func (r *meshRunner) Start(ctx context.Context) error {
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go r.loop(run)
	return nil
}

func (r *meshRunner) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(meshRunnerPoll)
	defer t.Stop()
	for {
		leader := r.n.srv.NATS().JetStreamIsStreamLeader(embed.NodeAccount, r.n.cfg.StreamName)
		switch {
		case leader && !r.active:
			r.activate(ctx)
		case !leader && r.active:
			r.deactivate()
		case r.active:
			r.n.mesh.Reconcile()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// activate runs the mesh here once this server knows every stored change;
// if it does not yet, the next poll tries again.
func (r *meshRunner) activate(ctx context.Context) {
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.n.registry.Barrier(bctx); err != nil {
		r.n.log.Warn("lead the event stream, but the registry is not caught up; the mesh waits", "error", err)
		return
	}
	if err := r.n.mesh.Activate(ctx); err != nil {
		r.n.log.Warn("run the mesh", "error", err)
		return
	}
	r.active = true
	if err := r.n.api.ServeRunner(true); err != nil {
		r.n.log.Error("answer for the mesh; status and retries through the other servers fail until the next leader change", "error", err)
	}
}

func (r *meshRunner) deactivate() {
	r.active = false
	if err := r.n.api.ServeRunner(false); err != nil {
		r.n.log.Warn("stop answering for the mesh", "error", err)
	}
	r.n.mesh.Deactivate()
}

// Close stops the workers this server runs: the stream's next leader
// takes them over.
func (r *meshRunner) Close() error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	<-r.done
	if r.active {
		r.deactivate()
	}
	return nil
}
