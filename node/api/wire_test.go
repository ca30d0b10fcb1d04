package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

func TestAppendReplyEncodesAsEncodingJSON(t *testing.T) {
	for _, r := range []protocol.AppendReply{{}, {Seq: 1}, {Seq: 18446744073709551615, Duplicate: true}} {
		type plain protocol.AppendReply // no MarshalJSON: what encoding/json writes
		want, _ := json.Marshal(plain(r))
		got, err := r.MarshalJSON()
		if err != nil || string(got) != string(want) {
			t.Errorf("%+v: got %s, %v; want %s", r, got, err, want)
		}
	}
}

func TestSimpleQueriesDecodeAsEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"get":"o-1"}`, `{"get":"o-\u00e9\"x","min_seq":42,"timeout_ms":100}`, `{"version":2,"get":"k","at_seq":7}`,
		`{"get":"a","get":"b"}`, `{"timeout_ms":-5,"get":"k"}`,
	} {
		var want projection.Query
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		got, ok := decodeSimpleQuery([]byte(body))
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v (%v), want %+v", body, got, ok, want)
		}
	}
	// Everything else goes to the strict decoder, which explains errors.
	for _, body := range []string{
		``, `[]`, `{}`, `{"get":1}`, `{"get":null}`, `{"get":"k","min_seq":-1}`, `{"get":"k","min_seq":1.5}`,
		`{"get":"k","extra":1}`, `{"list":{"prefix":"o"}}`, `{"count":{}}`, `{"history":"k"}`, `{"get":"k"`,
	} {
		if q, ok := decodeSimpleQuery([]byte(body)); ok {
			t.Errorf("%s: read as %+v", body, q)
		}
	}
}

func TestGetResultsEncodeAsEncodingJSON(t *testing.T) {
	next, count := "c", 3
	for _, r := range []projection.Result{
		{Seq: 9, Key: "o-1", Doc: json.RawMessage(`{"a":[1,{"b":"c"}],"n":null}`)},
		{Seq: 0}, {Seq: 1, Key: "k"}, {Seq: 2, Key: "é\"<", Doc: json.RawMessage(`{}`)},
		{Seq: 3, Docs: []projection.Doc{}}, {Seq: 4, Next: &next}, {Seq: 5, Count: &count},
	} {
		want, _ := json.Marshal(&r)
		got, err := encodeResult(&r)
		if err != nil || string(got) != string(want) {
			t.Errorf("%+v: got %s, %v; want %s", r, got, err, want)
		}
	}
}

func TestDeepNestingIsRefusedNotRecursed(t *testing.T) {
	deep := []byte(`{"get":` + strings.Repeat("[", 1<<20) + `}`)
	if _, ok := decodeSimpleQuery(deep); ok {
		t.Fatal("a 1M-deep body read as a simple query")
	}
}
