package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/datamesh/datamesh/schemas"
)

// ContractResult is what applying one contract did: created, unchanged,
// replaced or forced.
type ContractResult struct {
	Aggregate string
	Name      string
	Version   int
	Status    string
}

func (r *Registry) loadContracts(ctx context.Context) error {
	cs, err := loadAll[schemas.Contract](ctx, r.kv, contractKeys)
	if err != nil {
		return fmt.Errorf("list registry: %w", err)
	}
	for _, c := range cs {
		v, err := schemas.Compile(c)
		if err != nil {
			return fmt.Errorf("load %s: %w", contractKey(c), err)
		}
		r.contracts[c.Key()] = insertVersion(r.contracts[c.Key()], v)
	}
	r.log.Debug("registry loaded", "contracts", len(r.contracts))
	return nil
}

// insertVersion returns versions with v in version order, replacing an equal version.
func insertVersion(versions []*schemas.Validator, v *schemas.Validator) []*schemas.Validator {
	out := make([]*schemas.Validator, 0, len(versions)+1)
	for _, o := range versions {
		if o.Contract().Version != v.Contract().Version {
			out = append(out, o)
		}
	}
	out = append(out, v)
	sort.Slice(out, func(i, j int) bool { return out[i].Contract().Version < out[j].Contract().Version })
	return out
}

// validator returns the latest contract of aggregate/type, or nil.
func (r *Registry) validator(aggregate, typ string) *schemas.Validator {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.contracts[aggregate+"."+typ]
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
}

// Check validates data against the latest contract of aggregate/typ (see
// eventlog.Contracts).
func (r *Registry) Check(aggregate, typ string, data []byte) (schemaURI string, found bool, err error) {
	v := r.validator(aggregate, typ)
	if v == nil {
		return "", false, nil
	}
	if err := v.Check(data); err != nil {
		return "", true, err
	}
	return v.Contract().SchemaURI(), true, nil
}

// Latest returns the latest version of every contract, sorted by key.
func (r *Registry) Latest() []*schemas.Contract {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*schemas.Contract, 0, len(r.contracts))
	for _, vs := range r.contracts {
		out = append(out, vs[len(vs)-1].Contract())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// EventTypes lists the latest contract of every event type as catalog
// entries, sorted by key.
func (r *Registry) EventTypes() []schemas.CatalogEntry {
	latest := r.Latest()
	out := make([]schemas.CatalogEntry, 0, len(latest))
	for _, c := range latest {
		out = append(out, c.Entry(r.prefix))
	}
	return out
}

// ApplyContracts checks every contract against the registry and what comes
// before it in the same request, then stores them all. Nothing is stored
// unless every contract is accepted.
func (r *Registry) ApplyContracts(ctx context.Context, cs []*schemas.Contract, force bool) ([]ContractResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	staged := map[string][]*schemas.Validator{}
	current := func(key string) []*schemas.Validator {
		if vs, ok := staged[key]; ok {
			return vs
		}
		return r.contracts[key]
	}
	results := make([]ContractResult, len(cs))
	var writes []*schemas.Validator
	for i, c := range cs {
		vs := current(c.Key())
		status, err := decide(c, vs, force)
		if err != nil {
			return nil, err
		}
		results[i] = ContractResult{Aggregate: c.Aggregate, Name: c.Name, Version: c.Version, Status: status}
		if status == "unchanged" {
			continue
		}
		v, err := schemas.Compile(c)
		if err != nil {
			return nil, kinded(ErrInvalid, err, "contract %s: %v", c.Key(), err)
		}
		staged[c.Key()] = insertVersion(vs, v)
		writes = append(writes, v)
	}
	for _, v := range writes {
		b, err := json.Marshal(v.Contract())
		if err != nil {
			return nil, fmt.Errorf("encode contract: %w", err)
		}
		if _, err := r.kv.Put(ctx, contractKey(v.Contract()), b); err != nil {
			return nil, kinded(ErrUnavailable, err, "store contract %s: %v", v.Contract().Key(), err)
		}
	}
	for k, vs := range staged {
		r.contracts[k] = vs
	}
	for _, res := range results {
		if res.Status != "unchanged" {
			r.log.Info("contract applied", "contract", res.Aggregate+"."+res.Name, "version", res.Version, "status", res.Status)
		}
	}
	return results, nil
}

// decide says what applying c over the stored versions vs does: created,
// unchanged, replaced (force) or forced (incompatible, force), or why not.
func decide(c *schemas.Contract, vs []*schemas.Validator, force bool) (string, error) {
	var same, latest *schemas.Contract
	for _, v := range vs {
		if v.Contract().Version == c.Version {
			same = v.Contract()
		}
		latest = v.Contract()
	}
	switch {
	case same != nil && same.Equal(c):
		return "unchanged", nil
	case same != nil && !force:
		return "", kinded(ErrConflict, nil, "contract %s version %d already exists with other content: bump the version (or apply with force to replace it)", c.Key(), c.Version)
	case same != nil:
		return "replaced", nil
	case latest != nil && c.Version < latest.Version:
		return "", kinded(ErrConflict, nil, "contract %s version %d is older than the latest version %d", c.Key(), c.Version, latest.Version)
	case latest != nil:
		if err := schemas.CheckCompatible(latest, c); err != nil {
			if !force {
				return "", kinded(ErrIncompatible, err, "%v", err)
			}
			return "forced", nil
		}
	}
	return "created", nil
}
