package resource

import (
	"errors"
	"os"
	"testing"
)

// FuzzDecodeResources decodes request bodies of dm.admin.apply: every
// error is ErrInvalid; a decoded body holds at least one resource.
func FuzzDecodeResources(f *testing.F) {
	for _, file := range []string{"contracts.yaml", "projection-orders.yaml", "changes/orderplaced-v2.yaml"} {
		b, err := os.ReadFile("../../deploy/examples/orders/" + file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	b, err := os.ReadFile("../../deploy/examples/mesh/billing-resources.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Add(file("a.yaml", contractDoc) + file("b.yaml", specDoc))
	f.Add(contractDoc + "---\nkind: Widget\n")
	f.Add(`[{"kind":"EventType"}]`)
	f.Add("---\n---\n")
	f.Fuzz(func(t *testing.T, body string) {
		s, err := decode([]byte(body))
		if err != nil {
			if !errors.Is(err, ErrInvalid) || err.Error() == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(s.contracts)+len(s.specs)+len(s.exports)+len(s.links) == 0 {
			t.Fatalf("decoded no resource from %q", body)
		}
	})
}
