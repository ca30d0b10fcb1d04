package projection

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/buntdb"
	"github.com/tidwall/gjson"
)

// Query limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Query is the body of a query request: exactly one of Get, List, Count
// or History.
type Query struct {
	Get     *string `json:"get,omitempty"`
	AtSeq   uint64  `json:"at_seq,omitempty"`
	List    *Filter `json:"list,omitempty"`
	Count   *Filter `json:"count,omitempty"`
	History *string `json:"history,omitempty"`
	// MinSeq makes the query wait until the projection has applied this seq.
	MinSeq    uint64 `json:"min_seq,omitempty"`
	TimeoutMS int    `json:"timeout_ms,omitempty"`
	// Version targets one version of the projection instead of the active one.
	Version int `json:"version,omitempty"`
}

// Filter selects documents by an index range or a key prefix.
type Filter struct {
	Index  string          `json:"index,omitempty"`
	Eq     json.RawMessage `json:"eq,omitempty"`
	Gt     json.RawMessage `json:"gt,omitempty"`
	Gte    json.RawMessage `json:"gte,omitempty"`
	Lt     json.RawMessage `json:"lt,omitempty"`
	Lte    json.RawMessage `json:"lte,omitempty"`
	Prefix string          `json:"prefix,omitempty"`
	Limit  int             `json:"limit,omitempty"`
	After  string          `json:"after,omitempty"`
	Desc   bool            `json:"desc,omitempty"`
}

// Doc is one document of a list.
type Doc struct {
	Key string          `json:"key"`
	Doc json.RawMessage `json:"doc"`
}

// Version of a document in its history; Doc is null once deleted.
type Version struct {
	Seq uint64          `json:"seq"`
	Doc json.RawMessage `json:"doc"`
}

// Result is a query's answer; Seq is the checkpoint it reflects.
type Result struct {
	Seq     uint64          `json:"seq"`
	Key     string          `json:"key,omitempty"`
	Doc     json.RawMessage `json:"doc,omitempty"`
	Docs    []Doc           `json:"docs,omitempty"`
	Next    *string         `json:"next,omitempty"`
	Count   *int            `json:"count,omitempty"`
	History []Version       `json:"history,omitempty"`
}

// Check validates q's shape against the projection's spec.
func (q *Query) Check(spec *Spec) error {
	n := 0
	for _, set := range []bool{q.Get != nil, q.List != nil, q.Count != nil, q.History != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return badQuery("a query needs exactly one of get, list, count or history")
	}
	if q.AtSeq != 0 && q.Get == nil {
		return badQuery("at_seq goes with get")
	}
	if (q.AtSeq != 0 || q.History != nil) && !spec.History.On {
		return badQuery("projection %s keeps no history (history: false)", spec.Name)
	}
	if q.TimeoutMS < 0 {
		return badQuery("timeout_ms must not be negative")
	}
	f := q.List
	if f == nil {
		f = q.Count
	}
	if f == nil {
		return nil
	}
	if f.Limit < 0 || f.Limit > MaxListLimit {
		return badQuery("limit %d: must be between 1 and %d", f.Limit, MaxListLimit)
	}
	ranged := len(f.Eq) > 0 || len(f.Gt) > 0 || len(f.Gte) > 0 || len(f.Lt) > 0 || len(f.Lte) > 0
	if f.Index == "" && ranged {
		return badQuery("eq, gt, gte, lt and lte need an index")
	}
	if f.Index != "" {
		if _, ok := spec.Indexes[f.Index]; !ok {
			return badQuery("projection %s has no index %q (it has %s)", spec.Name, f.Index, strings.Join(sortedKeys(spec.Indexes), ", "))
		}
		if f.Prefix != "" {
			return badQuery("prefix works on keys, not with an index")
		}
		if len(f.Eq) > 0 && (len(f.Gt) > 0 || len(f.Gte) > 0 || len(f.Lt) > 0 || len(f.Lte) > 0) {
			return badQuery("eq does not combine with gt, gte, lt or lte")
		}
		for _, v := range []json.RawMessage{f.Eq, f.Gt, f.Gte, f.Lt, f.Lte} {
			if len(v) > 0 && !json.Valid(v) {
				return badQuery("index bounds must be JSON values")
			}
		}
		return checkBoundTypes(spec, f)
	}
	return nil
}

// checkBoundTypes refuses a bound whose JSON type is not the declared type
// of its index: a string bound on a number index (or the reverse) selects
// nothing, which an empty answer would hide. An index without a declared
// type takes any bound.
func checkBoundTypes(spec *Spec, f *Filter) error {
	ix := spec.Indexes[f.Index]
	if ix.Type == "" {
		return nil
	}
	bounds := []struct {
		name string
		v    json.RawMessage
	}{{"eq", f.Eq}, {"gt", f.Gt}, {"gte", f.Gte}, {"lt", f.Lt}, {"lte", f.Lte}}
	for _, b := range bounds {
		if len(b.v) == 0 {
			continue
		}
		if got := jsonType(b.v); got != ix.Type {
			return badQuery("projection %s: index %s has type %s: %s %s is %s, not a %s",
				spec.Name, f.Index, ix.Type, b.name, b.v, article(got), ix.Type)
		}
	}
	return nil
}

// jsonType names the type of a valid JSON value: string, number, boolean,
// null, array or object.
func jsonType(v json.RawMessage) string {
	switch r := gjson.ParseBytes(v); {
	case r.Type == gjson.String:
		return "string"
	case r.Type == gjson.Number:
		return "number"
	case r.Type == gjson.True || r.Type == gjson.False:
		return "boolean"
	case r.Type == gjson.Null:
		return "null"
	case r.IsArray():
		return "array"
	default:
		return "object"
	}
}

func article(typ string) string {
	switch typ {
	case "null":
		return "null"
	case "array", "object":
		return "an " + typ
	default:
		return "a " + typ
	}
}

// Run answers q (already checked) from the store. History queries
// rebuild versions from the log (history_query.go), after the read
// transaction: no transaction is held while the log is read.
func (s *Store) Run(ctx context.Context, q *Query) (*Result, error) {
	res := &Result{}
	var hist histRecord
	var hkey string
	err := s.db.View(func(tx *buntdb.Tx) error {
		v, _ := tx.Get(keyCheckpoint)
		res.Seq, _ = strconv.ParseUint(v, 10, 64)
		switch {
		case q.History != nil:
			hkey = *q.History
			return readHistory(tx, hkey, &hist)
		case q.Get != nil && q.AtSeq != 0:
			hkey = *q.Get
			return readHistory(tx, hkey, &hist)
		case q.Get != nil:
			rec, err := tx.Get(docPrefix + *q.Get)
			if errors.Is(err, buntdb.ErrNotFound) {
				return notFound("no document %q", *q.Get)
			}
			if err != nil {
				return err
			}
			res.Key, res.Doc = *q.Get, json.RawMessage(gjson.Get(rec, "doc").Raw)
			return nil
		case q.List != nil:
			return s.scan(tx, q.List, res, false)
		default:
			return s.scan(tx, q.Count, res, true)
		}
	})
	switch {
	case err != nil:
	case q.History != nil:
		err = s.historyOf(ctx, hkey, hist, res)
	case q.Get != nil && q.AtSeq != 0:
		err = s.getAt(ctx, hkey, q.AtSeq, hist, res)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// cursor is where a list page ended: the key and, on an index, the record
// as it was, so the next page starts after it even if documents change.
type cursor struct {
	Key    string `json:"k"`
	Record string `json:"r,omitempty"`
	// KeyBytes and RecordBytes hold a key or record that is not valid
	// UTF-8 (a key from a subject token can be any bytes), which a JSON
	// string would alter: the next page would start at another place.
	KeyBytes    []byte `json:"kb,omitempty"`
	RecordBytes []byte `json:"rb,omitempty"`
}

func (c cursor) encode() string {
	if !utf8.ValidString(c.Key) {
		c.Key, c.KeyBytes = "", []byte(c.Key)
	}
	if !utf8.ValidString(c.Record) {
		c.Record, c.RecordBytes = "", []byte(c.Record)
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, badQuery("after: not a cursor from this projection")
	}
	if c.KeyBytes != nil {
		c.Key, c.KeyBytes = string(c.KeyBytes), nil
	}
	if c.RecordBytes != nil {
		c.Record, c.RecordBytes = string(c.RecordBytes), nil
	}
	return c, nil
}

// pivot builds a record whose indexed field holds v, to compare against.
func pivot(field string, v json.RawMessage) string {
	parts := strings.Split(field, ".")
	out := string(v)
	for i := len(parts) - 1; i >= 0; i-- {
		k, _ := json.Marshal(parts[i])
		out = "{" + string(k) + ":" + out + "}"
	}
	return `{"doc":` + out + `}`
}

// scan lists or counts documents in index or key order, honouring bounds,
// the cursor and the limit.
func (s *Store) scan(tx *buntdb.Tx, f *Filter, res *Result, count bool) error {
	limit := f.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	var after *cursor
	if f.After != "" {
		c, err := decodeCursor(f.After)
		if err != nil {
			return err
		}
		after = &c
	}
	n := 0
	res.Docs = []Doc{}
	var last *cursor
	more := false
	emit := func(k, v string) bool {
		if !count && n == limit {
			more = true
			return false
		}
		n++
		if !count {
			key := k[len(docPrefix):]
			res.Docs = append(res.Docs, Doc{Key: key, Doc: json.RawMessage(gjson.Get(v, "doc").Raw)})
			last = &cursor{Key: key}
			if f.Index != "" {
				last.Record = v
			}
		}
		return true
	}
	var err error
	if f.Index == "" {
		err = s.scanKeys(tx, f, after, emit)
	} else {
		err = s.scanIndex(tx, f, after, emit)
	}
	if err != nil {
		return err
	}
	if count {
		res.Docs = nil
		res.Count = &n
		return nil
	}
	next := ""
	if more && last != nil {
		next = last.encode()
	}
	res.Next = &next
	return nil
}

// indexRange is the part of a JSON index a filter selects, and the cursor
// a page resumes after.
type indexRange struct {
	less           func(a, b string) bool
	loP, hiP       string // pivots; "" is unbounded
	loIncl, hiIncl bool
	after          *cursor
}

func (s *Store) newIndexRange(f *Filter, after *cursor) *indexRange {
	r := &indexRange{less: buntdb.IndexJSONCaseSensitive("doc." + s.indexes[f.Index].Field), after: after}
	lo, hi := f.Gte, f.Lte
	r.loIncl, r.hiIncl = true, true
	if len(f.Gt) > 0 {
		lo, r.loIncl = f.Gt, false
	}
	if len(f.Lt) > 0 {
		hi, r.hiIncl = f.Lt, false
	}
	if len(f.Eq) > 0 {
		lo, hi, r.loIncl, r.hiIncl = f.Eq, f.Eq, true, true
	}
	if len(lo) > 0 {
		r.loP = pivot(s.indexes[f.Index].Field, lo)
	}
	if len(hi) > 0 {
		r.hiP = pivot(s.indexes[f.Index].Field, hi)
	}
	return r
}

func (r *indexRange) eq(a, b string) bool { return !r.less(a, b) && !r.less(b, a) }

// Documents without the field sort first in a JSON index; a bounded
// or cursor scan never shows them, a plain index scan does.
func (r *indexRange) aboveLo(v string) bool {
	return r.loP == "" || r.less(r.loP, v) || (r.loIncl && r.eq(r.loP, v))
}

func (r *indexRange) belowHi(v string) bool {
	return r.hiP == "" || r.less(v, r.hiP) || (r.hiIncl && r.eq(v, r.hiP))
}

// pastCursor: items equal to the cursor's record come in key order.
func (r *indexRange) pastCursor(k, v string, desc bool) bool {
	if r.after == nil {
		return true
	}
	key := k[len(docPrefix):]
	if r.eq(v, r.after.Record) {
		if desc {
			return key < r.after.Key
		}
		return key > r.after.Key
	}
	if desc {
		return r.less(v, r.after.Record)
	}
	return r.less(r.after.Record, v)
}

func (s *Store) scanIndex(tx *buntdb.Tx, f *Filter, after *cursor, emit func(k, v string) bool) error {
	r := s.newIndexRange(f, after)
	if f.Desc {
		return r.descend(tx, f.Index, emit)
	}
	return r.ascend(tx, f.Index, emit)
}

func (r *indexRange) ascend(tx *buntdb.Tx, index string, emit func(k, v string) bool) error {
	visit := func(k, v string) bool {
		if !r.pastCursor(k, v, false) || !r.aboveLo(v) {
			return true
		}
		if !r.belowHi(v) {
			return false
		}
		return emit(k, v)
	}
	start := r.loP
	if r.after != nil && (start == "" || r.less(start, r.after.Record)) {
		start = r.after.Record
	}
	if start == "" {
		return tx.Ascend(index, visit)
	}
	return tx.AscendGreaterOrEqual(index, start, visit)
}

func (r *indexRange) descend(tx *buntdb.Tx, index string, emit func(k, v string) bool) error {
	visit := func(k, v string) bool {
		if !r.pastCursor(k, v, true) || !r.belowHi(v) {
			return true
		}
		if !r.aboveLo(v) {
			return false
		}
		return emit(k, v)
	}
	start := r.hiP
	if r.after != nil && (start == "" || r.less(r.after.Record, start)) {
		start = r.after.Record
	}
	if start == "" {
		return tx.Descend(index, visit)
	}
	// A descending pivot counts as above every item equal to it, so items
	// equal to start are visited too.
	return tx.DescendLessOrEqual(index, start, visit)
}
