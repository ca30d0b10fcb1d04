package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docRow is a row of docs/metrics.md's tables: | `name` | type | labels | meaning |
var docRow = regexp.MustCompile("(?m)^\\| `(datamesh_[a-z0-9_]+)` \\| (\\w+) \\| ([^|]*) \\| [^|]+ \\|$")

// docs/metrics.md lists every metric once, with its type and labels, and
// nothing else.
func TestDocsListEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range docRow.FindAllStringSubmatch(string(b), -1) {
		name, typ := m[1], m[2]
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "–" && l != "" {
				labels = append(labels, l)
			}
		}
		if documented[name] {
			t.Errorf("%s is listed twice", name)
		}
		documented[name] = true
		i := slices.IndexFunc(families, func(f *family) bool { return f.name == name })
		if i < 0 {
			t.Errorf("%s is documented but not exported", name)
			continue
		}
		if f := families[i]; f.typ != typ || !slices.Equal(f.labels, labels) {
			t.Errorf("%s: documented as %s %v, exported as %s %v", name, typ, labels, f.typ, f.labels)
		}
	}
	for _, f := range families {
		if !documented[f.name] {
			t.Errorf("%s is exported but not documented", f.name)
		}
	}
}
