package schemas_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datamesh/datamesh/schemas"
)

// exampleDocs returns every YAML document of the files matching pattern
// (relative to the package), the seeds of the fuzz targets.
func exampleDocs(f *testing.F, pattern string) []string {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files match %s: %v", pattern, err)
	}
	var docs []string
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		docs = append(docs, strings.Split(string(b), "\n---\n")...)
	}
	return docs
}

// FuzzDecodeContract: a contract that decodes re-encodes (as JSON) to one
// that decodes equal, and is compatible with itself; one that does not
// decode says why.
func FuzzDecodeContract(f *testing.F) {
	for _, d := range exampleDocs(f, "../deploy/examples/orders/*.yaml") {
		f.Add(d)
	}
	for _, d := range exampleDocs(f, "../deploy/examples/orders/changes/*.yaml") {
		f.Add(d)
	}
	f.Add("kind: EventType\nname: A\naggregate: a\nversion: 1\nschema: {type: object, required: [x], properties: {x: {type: [string, 'null'], pattern: '^a+$'}}}\n")
	f.Add(`{"kind":"EventType","name":"A","aggregate":"a","version":1,"schema":{"$ref":"#/$defs/x","$defs":{"x":{"type":"object"}}}}`)
	f.Add("kind: EventType\nname: A\naggregate: a\nversion: 1\nschema: {type: object}\nextra: 1\n")
	f.Add("- 1\n- 2\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := schemas.DecodeContract([]byte(doc))
		if err != nil {
			if c != nil || err.Error() == "" {
				t.Fatalf("error %v with contract %v", err, c)
			}
			return
		}
		if !schemas.ValidToken(c.Name) || !schemas.ValidToken(c.Aggregate) || c.Version < 1 {
			t.Fatalf("accepted a contract with bad fields: %+v", c)
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		again, err := schemas.DecodeContract(j)
		if err != nil {
			t.Fatalf("re-decode %s: %v", j, err)
		}
		if !c.Equal(again) {
			t.Fatalf("round trip changed the contract:\n%+v\n%+v", c, again)
		}
		if err := schemas.CheckCompatible(c, again); err != nil {
			t.Fatalf("a contract is incompatible with itself: %v", err)
		}
	})
}

// FuzzValidate checks event data against the example contracts: valid data
// gives no violation, invalid data a *ViolationError listing each one with
// a JSON pointer.
func FuzzValidate(f *testing.F) {
	var validators []*schemas.Validator
	for _, d := range exampleDocs(f, "../deploy/examples/orders/contracts.yaml") {
		c, err := schemas.DecodeContract([]byte(d))
		if err != nil {
			f.Fatal(err)
		}
		v, err := schemas.Compile(c)
		if err != nil {
			f.Fatal(err)
		}
		validators = append(validators, v)
	}
	for _, s := range []string{`{"customer":"c-1","total":30}`, `{"sku":"b","price":-1}`, `{"carrier":"ups"}`,
		`{}`, `[]`, `null`, `{"customer":1,"total":"x","a":{"b":[1,2]}}`, `{"customer":"c","total":1e400}`, `not json`} {
		f.Add(uint8(0), []byte(s))
		f.Add(uint8(1), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		v := validators[int(which)%len(validators)]
		vs := v.Validate(data)
		err := v.Check(data)
		var ve *schemas.ViolationError
		switch {
		case len(vs) == 0 && err != nil:
			t.Fatalf("no violations but error %v", err)
		case len(vs) > 0 && !errors.As(err, &ve):
			t.Fatalf("violations %v but error %v", vs, err)
		case len(vs) == 0 && !json.Valid(data):
			t.Fatalf("invalid JSON %q accepted", data)
		}
		for _, x := range vs {
			if x.Path != "" && !strings.HasPrefix(x.Path, "/") || x.Message == "" {
				t.Fatalf("bad violation %+v", x)
			}
		}
	})
}
