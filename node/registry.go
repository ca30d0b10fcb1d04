package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/schemas"
)

// registry holds the node's resources (today: event contracts) in a
// JetStream KV bucket, so they survive restarts, with compiled copies in memory.
type registry struct {
	kv  jetstream.KeyValue
	log hclog.Logger

	mu        sync.RWMutex
	contracts map[string][]*schemas.Validator // Contract.Key() → versions, ascending
}

func openRegistry(ctx context.Context, js jetstream.JetStream, logger hclog.Logger) (*registry, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      registryKV,
		Description: "DataMesh resources: contracts, projections, links",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	r := &registry{kv: kv, log: logger.Named("registry"), contracts: map[string][]*schemas.Validator{}}
	keys, err := kv.ListKeysFiltered(ctx, "eventtype.>")
	if err != nil {
		return nil, fmt.Errorf("list registry: %w", err)
	}
	for key := range keys.Keys() {
		entry, err := kv.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", key, err)
		}
		var c schemas.Contract
		if err := json.Unmarshal(entry.Value(), &c); err != nil {
			return nil, fmt.Errorf("load %s: %w", key, err)
		}
		v, err := schemas.Compile(&c)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", key, err)
		}
		r.contracts[c.Key()] = insertVersion(r.contracts[c.Key()], v)
	}
	r.log.Debug("registry loaded", "contracts", len(r.contracts))
	return r, nil
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

func contractKVKey(c *schemas.Contract) string {
	enc := base64.RawURLEncoding
	return "eventtype." + enc.EncodeToString([]byte(c.Aggregate)) + "." +
		enc.EncodeToString([]byte(c.Name)) + ".v" + strconv.Itoa(c.Version)
}

// validator returns the latest contract of aggregate/type, or nil.
func (r *registry) validator(aggregate, typ string) *schemas.Validator {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.contracts[aggregate+"."+typ]
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
}

// latest returns the latest version of every contract, sorted by key.
func (r *registry) latest() []*schemas.Contract {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*schemas.Contract, 0, len(r.contracts))
	for _, vs := range r.contracts {
		out = append(out, vs[len(vs)-1].Contract())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// applyContracts checks every contract against the registry and what comes
// before it in the same request, then stores them all. Nothing is stored
// unless every contract is accepted.
func (r *registry) applyContracts(ctx context.Context, cs []*schemas.Contract, force bool) ([]ApplyResult, *Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	staged := map[string][]*schemas.Validator{}
	current := func(key string) []*schemas.Validator {
		if vs, ok := staged[key]; ok {
			return vs
		}
		return r.contracts[key]
	}
	results := make([]ApplyResult, len(cs))
	var writes []*schemas.Validator
	for i, c := range cs {
		res := ApplyResult{Kind: schemas.KindEventType, Name: c.Name, Aggregate: c.Aggregate, Version: c.Version, Status: "created"}
		vs := current(c.Key())
		var same, latest *schemas.Contract
		for _, v := range vs {
			if v.Contract().Version == c.Version {
				same = v.Contract()
			}
			latest = v.Contract()
		}
		switch {
		case same != nil && same.Equal(c):
			res.Status = "unchanged"
			results[i] = res
			continue
		case same != nil && !force:
			return nil, newError(CodeConflict, 409, "contract %s version %d already exists with other content: bump the version (or apply with force to replace it)", c.Key(), c.Version)
		case same != nil:
			res.Status = "replaced"
		case latest != nil && c.Version < latest.Version:
			return nil, newError(CodeConflict, 409, "contract %s version %d is older than the latest version %d", c.Key(), c.Version, latest.Version)
		case latest != nil:
			if err := schemas.CheckCompatible(latest, c); err != nil {
				var inc *schemas.IncompatibleError
				if !force {
					e := newError(CodeIncompatible, 409, "%v", err)
					if errors.As(err, &inc) {
						e.Reasons = inc.Reasons
					}
					return nil, e
				}
				res.Status = "forced"
			}
		}
		v, err := schemas.Compile(c)
		if err != nil {
			return nil, errBadRequest("contract %s: %v", c.Key(), err)
		}
		staged[c.Key()] = insertVersion(vs, v)
		writes = append(writes, v)
		results[i] = res
	}
	for _, v := range writes {
		b, err := json.Marshal(v.Contract())
		if err != nil {
			return nil, errInternal("encode contract: %v", err)
		}
		if _, err := r.kv.Put(ctx, contractKVKey(v.Contract()), b); err != nil {
			return nil, errUnavailable("store contract %s: %v", v.Contract().Key(), err)
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

// listKeys returns every key of kv that matches filter. It reads the lister
// to its end (a lister left early keeps a goroutine blocked) and fails if
// ctx ended first: the lister then stops early, without an error.
func listKeys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	lister, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}
