package node

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/projection"
)

// registryWatch keeps a clustered server in line with the resources the
// other servers apply: contracts, projection versions and active aliases
// (docs/cluster.md). Changes are coalesced: one reload covers every change
// that arrived while the previous one ran.
type registryWatch struct {
	reg         *registry.Registry
	projections *projection.Manager
	log         hclog.Logger

	contracts, projs atomic.Bool
	kick             chan struct{}
	cancel           context.CancelFunc
	done             sync.WaitGroup
}

func newRegistryWatch(reg *registry.Registry, pm *projection.Manager, logger hclog.Logger) *registryWatch {
	return &registryWatch{reg: reg, projections: pm, log: logger.Named("cluster"), kick: make(chan struct{}, 1)}
}

func (w *registryWatch) Start(ctx context.Context) error {
	ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	err := w.reg.Watch(ctx, func(what string) {
		switch what {
		case registry.ChangeContracts:
			w.contracts.Store(true)
		case registry.ChangeProjections:
			w.projs.Store(true)
		default:
			return
		}
		select {
		case w.kick <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	w.done.Add(1)
	go w.run(ctx)
	return nil
}

func (w *registryWatch) run(ctx context.Context) {
	defer w.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		if w.contracts.Swap(false) {
			if err := w.reg.ReloadContracts(ctx); err != nil {
				w.log.Error("reload contracts applied on another server", "error", err)
			}
		}
		if w.projs.Swap(false) {
			if err := w.projections.Sync(ctx); err != nil {
				w.log.Error("follow projections applied on another server", "error", err)
			}
		}
	}
}

func (w *registryWatch) Close() error {
	if w.cancel != nil {
		w.cancel()
	}
	w.done.Wait()
	return nil
}
