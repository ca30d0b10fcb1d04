package node

import (
	"encoding/json"
	"testing"
)

func TestAppendReplyEncodesAsEncodingJSON(t *testing.T) {
	for _, r := range []AppendReply{{}, {Seq: 1}, {Seq: 18446744073709551615, Duplicate: true}} {
		type plain AppendReply // no MarshalJSON: what encoding/json writes
		want, _ := json.Marshal(plain(r))
		got, err := r.MarshalJSON()
		if err != nil || string(got) != string(want) {
			t.Errorf("%+v: got %s, %v; want %s", r, got, err, want)
		}
	}
}
