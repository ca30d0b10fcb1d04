package projection

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/buntdb"
)

// History stores, per document, only the seqs of the events that changed
// it (its versions), under h:<key>: a few bytes per version. A past
// version is rebuilt on demand by folding those events, read back from the
// log, through the same handlers (history_query.go): handlers are
// deterministic, now() being the event's time. Full copies of every version
// made history quadratic in a growing document's events.
//
// The record is text: the versions in order, each the difference of its seq
// from the previous one's (the first: the seq itself) in base 36, a version
// that deleted the document prefixed with '-', separated by ','. A leading
// '~' says that older versions were dropped by retention (keep), so that an
// older seq is answered as beyond retention rather than as no document.
//
// A stored record always starts where folding from no document is right:
// at the document's first version, or just after a version that deleted
// it (or at that delete). Retention drops versions only up to such a point.

// histVersion is one version of a document: the event that made it, and
// whether that event deleted the document.
type histVersion struct {
	seq uint64
	del bool
}

// histRecord is the history of one document.
type histRecord struct {
	trimmed  bool
	versions []histVersion
}

func histKey(key string) string { return histPrefix + key }

// parseHistory reads a stored record.
func parseHistory(v string) (histRecord, error) {
	var r histRecord
	if strings.HasPrefix(v, "~") {
		r.trimmed, v = true, v[1:]
	}
	if v == "" {
		return r, nil
	}
	r.versions = make([]histVersion, 0, strings.Count(v, ",")+1)
	var seq uint64
	for part := range strings.SplitSeq(v, ",") {
		del := strings.HasPrefix(part, "-")
		d, err := strconv.ParseUint(strings.TrimPrefix(part, "-"), 36, 64)
		if err != nil {
			return r, fmt.Errorf("history record: %w", err)
		}
		seq += d
		r.versions = append(r.versions, histVersion{seq: seq, del: del})
	}
	return r, nil
}

// encode is the stored form of r.
func (r histRecord) encode() string {
	b := make([]byte, 0, 4*len(r.versions)+1)
	if r.trimmed {
		b = append(b, '~')
	}
	var prev uint64
	for i, v := range r.versions {
		if i > 0 {
			b = append(b, ',')
		}
		if v.del {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, v.seq-prev, 36)
		prev = v.seq
	}
	return string(b)
}

// add appends the versions newer than the record's last one: a batch
// replayed after a crash adds each version once.
func (r *histRecord) add(vs []histVersion) {
	for _, v := range vs {
		if n := len(r.versions); n == 0 || v.seq > r.versions[n-1].seq {
			r.versions = append(r.versions, v)
		}
	}
}

// trim drops what no version among the last keep needs: the versions up to
// the last delete before the oldest kept version (folding restarts from no
// document after a delete).
func (r *histRecord) trim(keep int) {
	first := len(r.versions) - keep // the oldest version kept
	if keep <= 0 || first <= 0 {
		return
	}
	cut := -1
	for i := first; i >= 0; i-- {
		if r.versions[i].del {
			cut = i
			break
		}
	}
	switch {
	case cut == first: // the oldest kept version is a delete: keep it
	case cut >= 0:
		cut++ // drop the delete too: the next version folds from nothing
	default:
		return
	}
	if cut > 0 {
		r.versions = append(r.versions[:0], r.versions[cut:]...)
		r.trimmed = true
	}
}

// writeHistory adds the batch's versions to the history records, in a
// transaction of its own committed before the documents': a crash at any
// point leaves every history record at or ahead of its document, and the
// replay from the checkpoint adds each version once (add). Written with
// the documents in one transaction, whose commands BuntDB writes in no set
// order, a power cut between two commands could keep a document and lose
// its history entries, which the replay then skips.
func (s *Store) writeHistory(states map[string]*docState, order []string, spec *Spec) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		for _, key := range order {
			st := states[key]
			if len(st.versions) == 0 {
				continue
			}
			var r histRecord
			v, err := tx.Get(histKey(key))
			switch {
			case err == nil:
				if r, err = parseHistory(v); err != nil {
					return fmt.Errorf("document %q: %w", key, err)
				}
			case !errors.Is(err, buntdb.ErrNotFound):
				return err
			}
			r.add(st.versions)
			r.trim(spec.History.Keep)
			if _, _, err := tx.Set(histKey(key), r.encode(), nil); err != nil {
				return err
			}
		}
		return nil
	})
}
