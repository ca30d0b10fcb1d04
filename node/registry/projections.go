package registry

import (
	"context"

	"github.com/datamesh/datamesh/projection"
)

var _ projection.SpecStore = (*Registry)(nil)

// Specs returns every stored projection definition.
func (r *Registry) Specs(ctx context.Context) ([]*projection.Spec, error) {
	return loadAll[projection.Spec](ctx, r.kv, projectionKeys)
}

// PutSpec stores a projection version's definition.
func (r *Registry) PutSpec(ctx context.Context, s *projection.Spec) error {
	return put(ctx, r.kv, projectionKey(s.Name, s.Version), s)
}

// DeleteSpec forgets a projection version's definition.
func (r *Registry) DeleteSpec(ctx context.Context, name string, version int) error {
	return r.kv.Delete(ctx, projectionKey(name, version))
}

// Alias returns the stored active version of a projection.
func (r *Registry) Alias(ctx context.Context, name string) (a projection.Alias, found bool, err error) {
	found, err = get(ctx, r.kv, aliasKey(name), &a)
	return a, found, err
}

// PutAlias stores the active version of a projection.
func (r *Registry) PutAlias(ctx context.Context, name string, a projection.Alias) error {
	return put(ctx, r.kv, aliasKey(name), a)
}
