package projection

import (
	"strings"

	"github.com/tidwall/buntdb"
)

// scanKeys visits the documents of f's key range (its prefix), after the
// cursor if any, in key order or, with Desc, in reverse; emit returns
// false to stop.
func (s *Store) scanKeys(tx *buntdb.Tx, f *Filter, after *cursor, emit func(k, v string) bool) error {
	prefix := docPrefix + f.Prefix
	in := func(k string) bool { return strings.HasPrefix(k, prefix) }
	if f.Desc {
		visit := func(k, v string) bool {
			if after != nil && k == docPrefix+after.Key {
				return true
			}
			if !in(k) {
				return k > prefix // keys above the prefix range: keep descending
			}
			return emit(k, v)
		}
		if after != nil {
			return tx.DescendLessOrEqual("", docPrefix+after.Key, visit)
		}
		// From just above the prefix range: a key may hold any byte, so no
		// "prefix + \xff" bound is above them all (FuzzListPaging).
		return tx.DescendLessOrEqual("", prefixEnd(prefix), visit)
	}
	start := prefix
	if after != nil {
		start = docPrefix + after.Key
	}
	return tx.AscendGreaterOrEqual("", start, func(k, v string) bool {
		if after != nil && k == docPrefix+after.Key {
			return true
		}
		if !in(k) {
			return false
		}
		return emit(k, v)
	})
}

// prefixEnd is the least string above every string that starts with p
// (p is never all 0xff bytes: it starts with docPrefix).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
