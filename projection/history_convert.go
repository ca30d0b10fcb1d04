package projection

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/buntdb"
	"github.com/tidwall/gjson"
)

// DataMesh 0.1.0 stored a copy of every version: h:<key>\x00<seq, 20
// digits> → the document, or null for a version that deleted it. A file in
// that layout is converted when it is opened, without folding anything
// again: each document's old entries, in seq order, become its record
// (history.go).
//
// The conversion takes four transactions, each committed before the next
// begins (BuntDB writes a transaction's commands in no set order, and a
// crash can keep any prefix of whole commands; a cut inside a command makes
// the file start afresh, see openFile):
//
//  1. set keyConverting: from here on, the file is known to need converting
//     even once its first h: key is a new record;
//  2. write the new records, each whole, built from all the old entries of
//     its document; a record already there was written by an interrupted
//     conversion, from the same entries, and is kept;
//  3. delete the old entries;
//  4. delete keyConverting.
//
// So a crash at any point leaves, for every document, its old entries or
// its complete new record, and the next open finishes the conversion.
// Written together, the sets and deletes of one transaction could keep a
// delete and lose the record it replaces.
const keyConverting = "m:history-converting"

// errOldHistoryLost is a 0.1.0 history that disagrees with the documents:
// that layout could lose the last batch's history entries to a power cut
// while keeping the documents. Such a file is rebuilt from the log.
var errOldHistoryLost = errors.New("the history in the 0.1.0 layout misses versions of the documents")

// oldHistory reports whether the file holds history in the 0.1.0 layout,
// or a conversion that did not finish.
func oldHistory(db *buntdb.DB) bool {
	old := false
	_ = db.View(func(tx *buntdb.Tx) error {
		if _, err := tx.Get(keyConverting); err == nil {
			old = true
			return nil
		}
		return tx.AscendGreaterOrEqual("", histPrefix, func(k, _ string) bool {
			old = strings.HasPrefix(k, histPrefix) && strings.Contains(k, histSep)
			return false
		})
	})
	return old
}

// oldEntries are the history keys of a file being converted.
type oldEntries struct {
	order []string              // document keys, in key order
	recs  map[string]histRecord // the records: stored or built from old entries
	have  map[string]bool       // the documents whose record is stored
	old   []string              // the old entries' keys
}

// convertHistory converts the file's history to the record per document,
// keeping the last keep versions (0: all). It returns errOldHistoryLost
// when the old history misses versions: the caller rebuilds the file.
func convertHistory(db *buntdb.DB, keep int) error {
	err := db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(keyConverting, "1", nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("convert history: %w", err)
	}
	var e *oldEntries
	err = db.Update(func(tx *buntdb.Tx) error {
		if e, err = readOldEntries(tx); err != nil {
			return err
		}
		if err := e.check(tx); err != nil {
			return err
		}
		for _, key := range e.order {
			if e.have[key] {
				continue
			}
			r := e.recs[key]
			r.trim(keep)
			if _, _, err := tx.Set(histKey(key), r.encode(), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("convert history: %w", err)
	}
	err = db.Update(func(tx *buntdb.Tx) error {
		for _, k := range e.old {
			if _, err := tx.Delete(k); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.Update(func(tx *buntdb.Tx) error {
			_, err := tx.Delete(keyConverting)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("convert history: %w", err)
	}
	return nil
}

// readOldEntries reads every history key: old entries come in key order,
// so each document's in seq order (20 digits), right after its record if
// it has one.
func readOldEntries(tx *buntdb.Tx) (*oldEntries, error) {
	e := &oldEntries{recs: map[string]histRecord{}, have: map[string]bool{}}
	var err error
	tx.AscendGreaterOrEqual("", histPrefix, func(k, v string) bool {
		rest, ok := strings.CutPrefix(k, histPrefix)
		if !ok {
			return false
		}
		key, seqText, old := strings.Cut(rest, histSep)
		if _, seen := e.recs[key]; !seen {
			e.order = append(e.order, key)
		}
		if !old {
			var r histRecord
			if r, err = parseHistory(v); err != nil {
				err = fmt.Errorf("document %q: %w", key, err)
				return false
			}
			e.recs[key], e.have[key] = r, true
			return true
		}
		e.old = append(e.old, k)
		seq, perr := strconv.ParseUint(seqText, 10, 64)
		if perr != nil {
			err = fmt.Errorf("history entry %q: %w", k, perr)
			return false
		}
		if !e.have[key] {
			r := e.recs[key]
			r.add([]histVersion{{seq: seq, del: v == "null"}})
			e.recs[key] = r
		}
		return true
	})
	return e, err
}

// check returns errOldHistoryLost unless every document's last version is
// the document as stored (its seq), every document has a history, and
// every history whose last version is not a delete has its document.
func (e *oldEntries) check(tx *buntdb.Tx) error {
	live := 0
	for _, key := range e.order {
		r := e.recs[key]
		if len(r.versions) == 0 {
			return errOldHistoryLost
		}
		last := r.versions[len(r.versions)-1]
		v, err := tx.Get(docPrefix + key)
		switch {
		case errors.Is(err, buntdb.ErrNotFound):
			if !last.del {
				return errOldHistoryLost
			}
			continue
		case err != nil:
			return err
		}
		if last.del || gjson.Get(v, "seq").Uint() != last.seq {
			return errOldHistoryLost
		}
		live++
	}
	docs := 0
	err := tx.AscendGreaterOrEqual("", docPrefix, func(k, _ string) bool {
		if !strings.HasPrefix(k, docPrefix) {
			return false
		}
		docs++
		return true
	})
	if err != nil {
		return err
	}
	if docs != live {
		return errOldHistoryLost
	}
	return nil
}
