package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeProjection: a projection that decodes re-encodes (as JSON) to
// one that decodes equal; one that does not decode says why.
func FuzzDecodeProjection(f *testing.F) {
	f.Add(ordersSpec)
	for _, file := range []string{"../deploy/examples/orders/projection-orders.yaml", "../deploy/examples/orders/changes/projection-orders-v2.yaml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("kind: Projection\nname: p\nversion: 1\nsource: {aggregates: [a], types: [T]}\nkey: data.k\nhandlers: {T: 'doc'}\nindexes: {i: {field: a.b, type: number}}\n")
	f.Add("kind: Projection\nname: p\nversion: 1\nsource: {aggregates: [a], types: [T]}\nkey: event.id\nhandlers: {T: '{'}\n")
	f.Add("kind: Projection\nname: p\nversion: 0\nsource: {}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		s, err := Decode([]byte(doc))
		if err != nil {
			if s != nil || err.Error() == "" {
				t.Fatalf("error %v with spec %v", err, s)
			}
			return
		}
		j, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("encode %+v: %v", s, err)
		}
		again, err := Decode(j)
		if err != nil {
			t.Fatalf("re-decode %s: %v", j, err)
		}
		if !s.Equal(again) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", s, again)
		}
	})
}

// FuzzCursor: a list cursor a client sends back either decodes to one that
// encodes and decodes the same, or is refused as a bad query; any key and
// record (document keys come from subjects: any bytes) survive the trip.
func FuzzCursor(f *testing.F) {
	f.Add(cursor{Key: "o-1"}.encode(), "o-1", "")
	f.Add(cursor{Key: "o-2", Record: `{"doc":{"total":3}}`}.encode(), "k", `{"doc":1}`)
	f.Add("not a cursor", "\xff\xfe", "")
	f.Add("", "", "\x00")
	f.Fuzz(func(t *testing.T, s, key, record string) {
		c, err := decodeCursor(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("cursor %q: untyped error %v", s, err)
			}
		} else if again, err := decodeCursor(c.encode()); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("cursor %q: decoded %+v, re-decoded %+v (%v)", s, c, again, err)
		}
		in := cursor{Key: key, Record: record}
		if out, err := decodeCursor(in.encode()); err != nil || !reflect.DeepEqual(out, in) {
			t.Fatalf("cursor %+v came back as %+v (%v)", in, out, err)
		}
	})
}

// queryStore is a store of the orders spec over a small log.
func queryStore(f *testing.F) (*Store, *Spec) {
	spec := mustSpec(f, ordersSpec)
	s := openStore(f, filepath.Join(f.TempDir(), "q.db"), spec)
	f.Cleanup(func() { s.Close() })
	events := orderLog(60)
	applyAll(f, s, spec, events, 25)
	useMemLog(f, s, spec, events)
	return s, spec
}

// FuzzQuery runs query bodies against a store: each is refused as a bad
// query, answered not found, or answered; a list read in pages of two
// holds the same documents as the list read at once.
func FuzzQuery(f *testing.F) {
	s, spec := queryStore(f)
	for _, b := range []string{`{"get":"o-1"}`, `{"get":"o-1","at_seq":3}`, `{"history":"o-2"}`,
		`{"list":{"index":"by_status","eq":"placed"}}`, `{"list":{"index":"by_total","gte":1,"desc":true,"limit":3}}`,
		`{"count":{"index":"by_total","lt":2}}`, `{"list":{"prefix":"o-1"}}`, `{"list":{"after":"eyJrIjoiby0zIn0"}}`,
		`{"list":{"index":"by_total","eq":"x"}}`, `{"get":"o-1","list":{}}`, `{"list":{"limit":5000}}`, `[]`, `{"get":1}`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var q Query
		if json.Unmarshal(body, &q) != nil {
			return
		}
		if err := q.Check(spec); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("check %s: untyped error %v", body, err)
			}
			return
		}
		res, err := s.Run(context.Background(), &q)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("run %s: untyped error %v", body, err)
			}
			return
		}
		if q.List != nil && q.List.Limit == 0 && q.List.After == "" {
			checkPages(t, s, *q.List, res.Docs)
		}
	})
}

// checkPages reads f in pages of two and compares with all.
func checkPages(t *testing.T, s *Store, f Filter, all []Doc) {
	t.Helper()
	f.Limit = 2
	checkPagesBy(t, s, f, all)
}

const pagingSpec = `
kind: Projection
name: p
version: 1
source: {aggregates: [a], types: [Put]}
key: event.id
handlers: {Put: "{v: data.v}"}
indexes: {by_v: v}
`

// FuzzListPaging stores documents under fuzzed keys (any subject token)
// and checks that paging by key or by index, either way, sees each
// document once.
func FuzzListPaging(f *testing.F) {
	spec := mustSpec(f, pagingSpec)
	folder, err := compileSpec(spec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("a,b,c,d,e", "x,x,y", false, uint8(1))
	f.Add("o-1,o-10,o-2,\xff,\xfe,é", ",,a", true, uint8(2))
	f.Fuzz(func(t *testing.T, keys, values string, desc bool, limit uint8) {
		s := openStore(t, ":memory:", spec)
		defer s.Close()
		vs := strings.Split(values, ",")
		var evs []*Event
		for i, k := range strings.Split(keys, ",") {
			if k == "" || strings.ContainsAny(k, ".*> \t\r\n\x00") { // NUL: refused as a key
				continue
			}
			v, _ := json.Marshal(vs[i%len(vs)])
			evs = append(evs, &Event{ID: k, EventID: fmt.Sprint(i), Aggregate: "a", Type: "Put", Seq: uint64(len(evs) + 1), Data: fmt.Appendf(nil, `{"v":%s}`, v)})
		}
		if len(evs) == 0 || len(evs) > 200 {
			return
		}
		if res, err := s.Apply(evs, folder, spec); err != nil || res.Failure != nil {
			t.Fatalf("apply: %v %+v", err, res.Failure)
		}
		stored := map[string]bool{}
		for _, ev := range evs {
			stored[ev.ID] = true
		}
		for _, f := range []Filter{{Desc: desc}, {Index: "by_v", Desc: desc}} {
			all, err := s.Run(context.Background(), &Query{List: &f})
			if err != nil {
				t.Fatal(err)
			}
			if len(all.Docs) != len(stored) {
				t.Fatalf("list %+v holds %d documents, want the %d stored: %q", f, len(all.Docs), len(stored), all.Docs)
			}
			f.Limit = int(limit%4) + 1
			checkPagesBy(t, s, f, all.Docs)
		}
	})
}

// checkPagesBy reads f in pages of f.Limit and compares with all.
func checkPagesBy(t *testing.T, s *Store, f Filter, all []Doc) {
	t.Helper()
	var got []Doc
	for page := 0; page <= len(all); page++ {
		res, err := s.Run(context.Background(), &Query{List: &f})
		if err != nil {
			t.Fatalf("page %d of %+v: %v", page, f, err)
		}
		got = append(got, res.Docs...)
		if *res.Next == "" {
			break
		}
		f.After = *res.Next
	}
	if !reflect.DeepEqual(got, all) && !(len(got) == 0 && len(all) == 0) {
		t.Fatalf("pages of %+v:\n%q\nall at once:\n%q", f, got, all)
	}
}
