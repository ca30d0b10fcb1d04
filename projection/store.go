package projection

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tidwall/buntdb"
	"github.com/tidwall/gjson"
)

// Keys in a projection's BuntDB file. Every document is stored as a record
// {"seq": <seq of the last event applied to it>, "doc": {...}}: the seq makes
// replay after a torn write skip events a document has already seen.
const (
	docPrefix     = "d:"
	histPrefix    = "h:" // h:<key> → the seqs of its versions (history.go)
	deadPrefix    = "x:" // x:<seq, 20 digits> → DeadLetter
	keyCheckpoint = "m:checkpoint"
	histSep       = "\x00" // 0.1.0's history layout's separator; not allowed in keys
)

// Store is one projection version's BuntDB file.
type Store struct {
	db      *buntdb.DB
	path    string
	indexes map[string]IndexSpec
	history HistorySpec
	src     historySource // set by useLog
	// Rebuilt is set when the file had a torn write, or history in the
	// 0.1.0 layout that missed versions (history_convert.go), and was
	// started afresh.
	Rebuilt bool
	// compacted is the file's size at open or at the last compaction
	// (compact.go).
	compacted int64
	// docs counts documents: counted at open, kept up to date by Apply. It is
	// not stored, so a torn write cannot make it drift.
	docs atomic.Int64
}

// OpenStore opens (or creates) the file at path and declares spec's indexes.
// BuntDB rebuilds indexes in memory at every open.
//
// A file whose last write was torn (BuntDB truncates the partial command
// when it loads) is deleted and the store starts empty: the worker then
// rebuilds it from the log, since what the torn batch held is unknown.
// History in 0.1.0's layout is converted (history_convert.go).
func OpenStore(path string, spec *Spec) (*Store, error) {
	db, rebuilt, err := openFile(path)
	if err != nil {
		return nil, err
	}
	if oldHistory(db) {
		err := convertHistory(db, spec.History.Keep)
		switch {
		case errors.Is(err, errOldHistoryLost):
			if db, err = startAfresh(db, path); err != nil {
				return nil, err
			}
			rebuilt = true
		case err != nil:
			db.Close()
			return nil, err
		}
	}
	s := &Store{db: db, path: path, indexes: spec.Indexes, history: spec.History, Rebuilt: rebuilt}
	if fi, err := os.Stat(path); err == nil {
		s.compacted = fi.Size()
	}
	err = db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", docPrefix, func(k, _ string) bool {
			if !strings.HasPrefix(k, docPrefix) {
				return false
			}
			s.docs.Add(1)
			return true
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("count documents: %w", err)
	}
	for name, ix := range spec.Indexes {
		if err := db.ReplaceIndex(name, docPrefix+"*", buntdb.IndexJSONCaseSensitive("doc."+ix.Field)); err != nil {
			db.Close()
			return nil, fmt.Errorf("index %s: %w", name, err)
		}
	}
	return s, nil
}

// openFile opens path, starting afresh if BuntDB had to truncate it.
func openFile(path string) (*buntdb.DB, bool, error) {
	var before int64 = -1
	if fi, err := os.Stat(path); err == nil {
		before = fi.Size()
	}
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if before < 0 || err != nil || fi.Size() >= before {
		return db, false, nil
	}
	db, err = startAfresh(db, path)
	return db, err == nil, err
}

// startAfresh closes db, deletes its file and opens an empty one.
func startAfresh(db *buntdb.DB, path string) (*buntdb.DB, error) {
	db.Close()
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("remove %s: %w", path, err)
	}
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Checkpoint is the seq of the last event applied.
func (s *Store) Checkpoint() (uint64, error) {
	var cp uint64
	err := s.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(keyCheckpoint)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		cp, err = strconv.ParseUint(v, 10, 64)
		return err
	})
	return cp, err
}

// SetCheckpoint records that every event up to seq was seen, when a batch
// held only events the projection does not handle.
func (s *Store) SetCheckpoint(seq uint64) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(keyCheckpoint, strconv.FormatUint(seq, 10), nil)
		return err
	})
}

// Stats are a store's size figures.
type Stats struct {
	Documents int
	FileBytes int64
}

// Stats returns the number of documents and the file size.
func (s *Store) Stats() Stats {
	st := Stats{Documents: int(s.docs.Load())}
	if fi, err := os.Stat(s.path); err == nil {
		st.FileBytes = fi.Size()
	}
	return st
}

// Change is one document changed by a committed batch.
type Change struct {
	Op  string          `json:"op"` // upsert or delete
	Key string          `json:"key"`
	Doc json.RawMessage `json:"doc,omitempty"`
	Seq uint64          `json:"seq"`
}

// DeadLetter is an event a projection with on_error: skip could not apply.
type DeadLetter struct {
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	Error   string `json:"error"`
}

// Failure is the event that stopped a projection.
type Failure struct {
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id"`
	Error   string `json:"error"`
}

// BatchResult is what Apply did.
type BatchResult struct {
	Changes []Change
	Dead    []DeadLetter
	// Failure is set when on_error is stop and an event failed: the batch
	// was committed up to the event before it.
	Failure *Failure
}

type docState struct {
	seq     uint64
	doc     map[string]any
	exists  bool // stored before this batch
	deleted bool
	dirty   bool
	// versions are the batch's versions of the document, for history.
	versions []histVersion
}

// folded is a batch folded, not yet committed.
type folded struct {
	states     map[string]*docState
	order      []string
	dead       []DeadLetter
	failure    *Failure
	checkpoint uint64
}

// Apply folds events into documents and commits them, then the checkpoint
// (the last event's seq).
//
// History, documents and checkpoint go in three transactions, in this
// order: BuntDB writes a transaction's commands in no set order, so a torn
// write could otherwise keep the checkpoint and lose documents, or keep a
// document and lose its history. This way a crash at any moment leaves the
// checkpoint at or before the documents, and each document at or before
// its history; the replay from the checkpoint skips what each document has
// already seen (its record's seq) and adds only the versions its history
// lacks: every event is applied once.
func (s *Store) Apply(events []*Event, f Folder, spec *Spec) (*BatchResult, error) {
	b := &folded{states: map[string]*docState{}}
	err := s.db.View(func(tx *buntdb.Tx) error {
		for _, ev := range events {
			err := s.applyOne(tx, ev, f, spec, b.states, &b.order)
			if err != nil {
				if spec.OnErrorPolicy() == OnErrorStop {
					b.failure = &Failure{Seq: ev.Seq, EventID: ev.EventID, Error: err.Error()}
					break
				}
				b.dead = append(b.dead, DeadLetter{Seq: ev.Seq, EventID: ev.EventID, Type: ev.Type, Error: err.Error()})
			}
			b.checkpoint = ev.Seq
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if spec.History.On {
		if err := s.writeHistory(b.states, b.order, spec); err != nil {
			return nil, err
		}
	}
	res, docs, err := s.writeDocs(b)
	if err != nil {
		return nil, err
	}
	if b.checkpoint == 0 {
		return res, nil
	}
	s.docs.Add(int64(docs))
	err = s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(keyCheckpoint, strconv.FormatUint(b.checkpoint, 10), nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// writeDocs commits a folded batch's documents and dead letters; it
// returns the changes and how many documents were added (or removed).
func (s *Store) writeDocs(b *folded) (*BatchResult, int, error) {
	res := &BatchResult{Dead: b.dead, Failure: b.failure}
	docs := 0
	err := s.db.Update(func(tx *buntdb.Tx) error {
		for _, dl := range b.dead {
			j, _ := json.Marshal(dl)
			if _, _, err := tx.Set(deadPrefix+seqKey(dl.Seq), string(j), nil); err != nil {
				return err
			}
		}
		for _, key := range b.order {
			st := b.states[key]
			if !st.dirty {
				continue
			}
			if st.deleted {
				if st.exists {
					if _, err := tx.Delete(docPrefix + key); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
						return err
					}
					docs--
				}
				res.Changes = append(res.Changes, Change{Op: "delete", Key: key, Seq: st.seq})
				continue
			}
			j, err := json.Marshal(st.doc)
			if err != nil {
				return fmt.Errorf("document %q: %w", key, err)
			}
			if _, _, err := tx.Set(docPrefix+key, record(st.seq, j), nil); err != nil {
				return err
			}
			if !st.exists {
				docs++
			}
			res.Changes = append(res.Changes, Change{Op: "upsert", Key: key, Doc: j, Seq: st.seq})
		}
		return nil
	})
	return res, docs, err
}

func (s *Store) applyOne(tx *buntdb.Tx, ev *Event, f Folder, spec *Spec, states map[string]*docState, order *[]string) error {
	var data any
	if len(ev.Data) > 0 {
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			return fmt.Errorf("event data is not JSON: %w", err)
		}
	}
	key, err := f.Key(ev, data)
	if err != nil {
		return err
	}
	if strings.Contains(key, histSep) {
		return errors.New("key: a key may not contain a NUL character")
	}
	st, ok := states[key]
	if !ok {
		st = &docState{}
		v, err := tx.Get(docPrefix + key)
		switch {
		case err == nil:
			st.exists = true
			st.seq = gjson.Get(v, "seq").Uint()
			if err := json.Unmarshal([]byte(gjson.Get(v, "doc").Raw), &st.doc); err != nil {
				return fmt.Errorf("stored document %q: %w", key, err)
			}
		case !errors.Is(err, buntdb.ErrNotFound):
			return err
		}
		states[key] = st
		*order = append(*order, key)
	}
	if st.seq >= ev.Seq {
		return nil // applied before a torn write; see the record format
	}
	var cur map[string]any
	if !st.deleted {
		cur = st.doc
	}
	out, del, err := f.Fold(ev, data, cur)
	if err != nil {
		return err
	}
	if out == nil && !del {
		return nil
	}
	st.seq, st.dirty, st.deleted, st.doc = ev.Seq, true, del, out
	if spec.History.On {
		st.versions = append(st.versions, histVersion{seq: ev.Seq, del: del})
	}
	return nil
}

func record(seq uint64, doc []byte) string {
	return `{"seq":` + strconv.FormatUint(seq, 10) + `,"doc":` + string(doc) + `}`
}

func seqKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }
