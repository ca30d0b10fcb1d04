package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/buntdb"
)

// eventLog reads events back from the log by seq: history folds them
// again to rebuild past versions.
type eventLog interface {
	// events returns the events at seqs, in the same order.
	events(ctx context.Context, seqs []uint64) ([]*Event, error)
}

// historySource is what a store rebuilds past versions with.
type historySource struct {
	log eventLog
	// folder folds for one query: the worker's own folder is busy on
	// the worker's goroutine.
	folder func() Folder
	now    func() time.Time
}

// useLog lets the store answer history queries, rebuilding versions by
// folding f's handlers over the events log reads back.
func (s *Store) useLog(log eventLog, f Folder) {
	s.src = historySource{log: log, folder: func() Folder { return queryFolder(f) }, now: time.Now}
}

// queryFolder is a folder for one query: an expression folder shares its
// compiled programs but not its runner. A Folder written in Go is shared
// with the worker: with history, it must be safe for concurrent use.
func queryFolder(f Folder) Folder {
	if e, ok := f.(*exprFolder); ok {
		return &exprFolder{key: e.key, keyField: e.keyField, handlers: e.handlers}
	}
	return f
}

// readHistory reads key's history record into r (empty if it has none).
func readHistory(tx *buntdb.Tx, key string, r *histRecord) error {
	v, err := tx.Get(histKey(key))
	if errors.Is(err, buntdb.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	*r, err = parseHistory(v)
	return err
}

// foldStart is where folding must start to rebuild version i: i itself if
// it deleted the document, else just after the last delete before it.
func (r histRecord) foldStart(i int) int {
	if r.versions[i].del {
		return i
	}
	for i > 0 && !r.versions[i-1].del {
		i--
	}
	return i
}

// rebuild folds the events of versions foldStart(from)…to of key and calls
// visit with each version from from on: its index, its event and the
// document as JSON (null when the version deleted it).
func (s *Store) rebuild(ctx context.Context, key string, r histRecord, from, to int, visit func(i int, ev *Event, doc json.RawMessage)) error {
	if s.src.log == nil {
		return fmt.Errorf("history of %q: the store reads no log", key)
	}
	start := r.foldStart(from)
	seqs := make([]uint64, 0, to-start+1)
	for _, v := range r.versions[start : to+1] {
		seqs = append(seqs, v.seq)
	}
	events, err := s.src.log.events(ctx, seqs)
	if err != nil {
		return fmt.Errorf("history of %q: %w", key, err)
	}
	f := s.src.folder()
	var cur map[string]any
	for k, ev := range events {
		i, v := start+k, r.versions[start+k]
		out, del := map[string]any(nil), true
		if !v.del {
			var data any
			if len(ev.Data) > 0 {
				if err := json.Unmarshal(ev.Data, &data); err != nil {
					return fmt.Errorf("history of %q: event seq %d: data is not JSON: %w", key, ev.Seq, err)
				}
			}
			if out, del, err = f.Fold(ev, data, cur); err != nil {
				return fmt.Errorf("history of %q: event seq %d: %w", key, ev.Seq, err)
			}
		}
		if del != v.del || (out == nil && !del) {
			return fmt.Errorf("history of %q: event seq %d does not give the version it gave (are the handlers deterministic?)", key, ev.Seq)
		}
		cur = out
		if i < from {
			continue
		}
		doc := json.RawMessage("null")
		if !del {
			if doc, err = json.Marshal(out); err != nil {
				return fmt.Errorf("history of %q: %w", key, err)
			}
		}
		visit(i, ev, doc)
	}
	return nil
}

// kept reports whether version i (made by ev) is within the history's
// retention: among the last keep versions, and younger than max_age
// unless it is the latest.
func (s *Store) kept(r histRecord, i int, ev *Event) bool {
	n := len(r.versions)
	if s.history.Keep > 0 && i < n-s.history.Keep {
		return false
	}
	if s.history.MaxAge > 0 && i < n-1 && ev != nil {
		return !parseTime(ev.Time).Before(s.src.now().Add(-s.history.MaxAge))
	}
	return true
}

func (s *Store) beyondRetention(key string, seq uint64) error {
	return notFound("document %q at seq %d: the version is beyond the projection's history retention (%s)",
		key, seq, s.history.retention())
}

// historyOf answers {"history": key}: every version kept, oldest first.
func (s *Store) historyOf(ctx context.Context, key string, r histRecord, res *Result) error {
	if len(r.versions) == 0 {
		return notFound("no history for %q", key)
	}
	from := 0
	if s.history.Keep > 0 {
		from = max(0, len(r.versions)-s.history.Keep)
	}
	res.Key = key
	res.History = make([]Version, 0, len(r.versions)-from)
	return s.rebuild(ctx, key, r, from, len(r.versions)-1, func(i int, ev *Event, doc json.RawMessage) {
		if s.kept(r, i, ev) {
			res.History = append(res.History, Version{Seq: ev.Seq, Doc: doc})
		}
	})
}

// getAt answers {"get": key, "at_seq": seq}: the version of key at seq.
func (s *Store) getAt(ctx context.Context, key string, seq uint64, r histRecord, res *Result) error {
	i := len(r.versions) - 1
	for i >= 0 && r.versions[i].seq > seq {
		i--
	}
	switch {
	case i < 0 && r.trimmed:
		return s.beyondRetention(key, seq)
	case i < 0:
		return notFound("no document %q at seq %d", key, seq)
	case !s.kept(r, i, nil):
		return s.beyondRetention(key, seq)
	}
	var ev *Event
	var doc json.RawMessage
	err := s.rebuild(ctx, key, r, i, i, func(_ int, e *Event, d json.RawMessage) { ev, doc = e, d })
	switch {
	case err != nil:
		return err
	case !s.kept(r, i, ev):
		return s.beyondRetention(key, seq)
	case r.versions[i].del:
		return notFound("no document %q at seq %d", key, seq)
	}
	res.Key, res.Doc = key, doc
	return nil
}
