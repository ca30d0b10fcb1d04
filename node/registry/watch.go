package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/schemas"
)

// What a change to the resources bucket concerns.
const (
	ChangeContracts   = "contracts"
	ChangeProjections = "projections"
	ChangeMesh        = "mesh"
)

// Watch calls onChange, from one goroutine, with what each change made to
// the resources bucket after Watch returns concerns (ChangeContracts, …),
// whoever made it: in a cluster, the other servers' applies, promotes and
// retires. It stops when ctx ends.
func (r *Registry) Watch(ctx context.Context, onChange func(what string)) error {
	w, err := r.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("%w: watch registry: %v", ErrUnavailable, err)
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				if what := changeOf(e.Key()); what != "" {
					onChange(what)
				}
			}
		}
	}()
	return nil
}

func changeOf(key string) string {
	switch {
	case strings.HasPrefix(key, "eventtype."):
		return ChangeContracts
	case strings.HasPrefix(key, "projection"):
		return ChangeProjections
	case strings.HasPrefix(key, "export.") || strings.HasPrefix(key, "link."):
		return ChangeMesh
	}
	return ""
}

// ReloadContracts reads every contract again: another server of the
// cluster applied one.
func (r *Registry) ReloadContracts(ctx context.Context) error {
	cs, err := loadAll[schemas.Contract](ctx, r.kv, contractKeys)
	if err != nil {
		return fmt.Errorf("list registry: %w", err)
	}
	fresh := map[string][]*schemas.Validator{}
	for _, c := range cs {
		v, err := schemas.Compile(c)
		if err != nil {
			return fmt.Errorf("load %s: %w", contractKey(c), err)
		}
		fresh[c.Key()] = insertVersion(fresh[c.Key()], v)
	}
	r.mu.Lock()
	r.contracts = fresh
	r.mu.Unlock()
	return nil
}
