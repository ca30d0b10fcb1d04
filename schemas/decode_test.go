package schemas

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var decodeCases = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-1.5e+10`, `123456789012345678901234567890`,
	`"a\"b\\c\u00e9\n"`, `{"a":1,"a":2}`, `[1,[2,[3,{"x":null}]],"s"]`,
	`{"customer":"c-1","total":12.5,"items":[{"sku":"x","price":1}],"ok":true,"none":null}`,
	` { "spaced" : [ 1 , 2 ] } `,
}

func TestDecodeAgreesWithJSONSchema(t *testing.T) {
	for _, c := range decodeCases {
		want, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(c)))
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got, err := decode([]byte(c))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, %v; want %#v", c, got, err, want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":}`, `[1,]`, `tru`, `{"a":1}x`} {
		if _, err := decode([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := []byte(decodeCases[len(decodeCases)-2])
	b.Run("gjson", func(b *testing.B) {
		for b.Loop() {
			_, _ = decode(data)
		}
	})
	b.Run("jsonschema", func(b *testing.B) {
		for b.Loop() {
			_, _ = jsonschema.UnmarshalJSON(bytes.NewReader(data))
		}
	})
}

func TestDecodeRefusesDeepNesting(t *testing.T) {
	if _, err := decode([]byte(strings.Repeat("[", 1<<20))); err == nil {
		t.Fatal("no error for a 1M-deep array")
	}
}
