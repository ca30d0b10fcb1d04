package registry

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
)

var (
	_ meshlink.Store     = (*Registry)(nil)
	_ meshlink.Contracts = (*Registry)(nil)
)

// Exports returns every stored export.
func (r *Registry) Exports(ctx context.Context) ([]*meshlink.Export, error) {
	return loadAll[meshlink.Export](ctx, r.kv, exportKeys)
}

// PutExport stores an export.
func (r *Registry) PutExport(ctx context.Context, e *meshlink.Export) error {
	return put(ctx, r.kv, exportKey(e.Name), e)
}

// DeleteExport forgets an export.
func (r *Registry) DeleteExport(ctx context.Context, name string) error {
	return r.kv.Delete(ctx, exportKey(name))
}

// Links returns every stored link.
func (r *Registry) Links(ctx context.Context) ([]*meshlink.Link, error) {
	return loadAll[meshlink.Link](ctx, r.kv, linkKeys)
}

// PutLink stores a link.
func (r *Registry) PutLink(ctx context.Context, l *meshlink.Link) error {
	return put(ctx, r.kv, linkKey(l.Name), l)
}

// DeleteLink forgets a link. Its checkpoint and dead letters stay.
func (r *Registry) DeleteLink(ctx context.Context, name string) error {
	return r.kv.Delete(ctx, linkKey(name))
}

// Checkpoint returns a link's checkpoint, the zero value if none is stored.
func (r *Registry) Checkpoint(ctx context.Context, link string) (meshlink.Checkpoint, error) {
	var cp meshlink.Checkpoint
	_, err := get(ctx, r.links, checkpointKey(link), &cp)
	return cp, err
}

// PutCheckpoint stores a link's checkpoint.
func (r *Registry) PutCheckpoint(ctx context.Context, link string, cp meshlink.Checkpoint) error {
	return put(ctx, r.links, checkpointKey(link), cp)
}

// CreateDeadLetter stores dl unless one is stored at its link and export seq.
func (r *Registry) CreateDeadLetter(ctx context.Context, dl meshlink.DeadLetter) (bool, error) {
	b, err := marshal(dl)
	if err != nil {
		return false, err
	}
	if _, err := r.links.Create(ctx, deadLetterKey(dl.Link, dl.ExportSeq), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// DeadLetter reads one dead letter.
func (r *Registry) DeadLetter(ctx context.Context, link string, exportSeq uint64) (dl meshlink.DeadLetter, found bool, err error) {
	found, err = get(ctx, r.links, deadLetterKey(link, exportSeq), &dl)
	return dl, found, err
}

// PutDeadLetter stores dl, replacing the one at its link and export seq.
func (r *Registry) PutDeadLetter(ctx context.Context, dl meshlink.DeadLetter) error {
	return put(ctx, r.links, deadLetterKey(dl.Link, dl.ExportSeq), dl)
}

// DeleteDeadLetter removes one dead letter.
func (r *Registry) DeleteDeadLetter(ctx context.Context, link string, exportSeq uint64) error {
	return r.links.Delete(ctx, deadLetterKey(link, exportSeq))
}

// DeadLetterSeqs lists the export seqs of a link's dead letters, unsorted.
func (r *Registry) DeadLetterSeqs(ctx context.Context, link string) ([]uint64, error) {
	keys, err := listKeys(ctx, r.links, deadLetterKeys(link))
	if err != nil {
		return nil, err // the caller says what it listed
	}
	seqs := make([]uint64, 0, len(keys))
	for _, key := range keys {
		if s, err := deadLetterSeq(key); err == nil {
			seqs = append(seqs, s)
		}
	}
	return seqs, nil
}
