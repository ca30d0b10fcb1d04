package metrics

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.yaml.in/yaml/v3"

	"github.com/datamesh/datamesh/node/api"
)

const alertsFile = "../../deploy/prometheus/datamesh-alerts.yaml"

// rulesFile is Prometheus's rules file format, as far as alerts use it.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// exportedSeries is every series name the node's registry exports under
// datamesh_, a histogram's as Prometheus stores them (_bucket, _sum,
// _count): read from a registry whose parts have one of everything.
func exportedSeries(t testing.TB) map[string]bool {
	t.Helper()
	m := New(fakeSources(), hclog.NewNullLogger())
	m.Append(api.OutcomeStored, 1, time.Millisecond)
	m.Query("orders", api.OutcomeOK, true, time.Millisecond)
	m.CommitGroup(2, time.Millisecond)
	out := map[string]bool{}
	for name, mf := range gather(t, m) {
		if !strings.HasPrefix(name, "datamesh_") {
			continue
		}
		if mf.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
			continue
		}
		out[name] = true
	}
	return out
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGroupings = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdents    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promDuration  = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	// promKeywords are PromQL's binary operators and modifiers;
	// promFunctions the functions the rules may call (add one when a rule
	// needs it).
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}
	promFunctions = map[string]bool{"max": true, "min": true, "sum": true, "avg": true, "count": true,
		"delta": true, "deriv": true, "rate": true, "increase": true, "changes": true, "max_over_time": true,
		"min_over_time": true, "avg_over_time": true, "abs": true, "absent": true, "histogram_quantile": true}
)

// metricNames returns the metric names expr selects; any other word that
// is neither a keyword nor a known function is an error.
func metricNames(expr string) (metrics, unknown []string) {
	s := promStrings.ReplaceAllString(expr, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGroupings.ReplaceAllString(s, " ")
	for _, m := range promIdents.FindAllString(s, -1) {
		call := strings.HasSuffix(m, "(")
		word := strings.TrimSpace(strings.TrimSuffix(m, "("))
		switch {
		case promKeywords[word]:
		case call:
			if !promFunctions[word] {
				unknown = append(unknown, word+"(")
			}
		case strings.HasPrefix(word, "datamesh_"):
			metrics = append(metrics, word)
		default:
			unknown = append(unknown, word)
		}
	}
	return metrics, unknown
}

func TestMetricNamesOfExpressions(t *testing.T) {
	m, u := metricNames(`max without (state) (a_b{x="y z"} > 0 and on (i, p) delta(datamesh_x[10m]) == 0) or datamesh_y == 1 or foo_bar`)
	if strings.Join(m, ",") != "datamesh_x,datamesh_y" || strings.Join(u, ",") != "a_b,foo_bar" {
		t.Fatalf("got metrics %v and unknown %v, want datamesh_x,datamesh_y and a_b,foo_bar", m, u)
	}
}

// The alert rules in deploy/ are a well-formed Prometheus rules file whose
// expressions use only metrics the node exports.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f rulesFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	exported := exportedSeries(t)
	var alerts []string
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("rule %q: want alert and expr", r.Alert)
			}
			if r.For != "" && !promDuration.MatchString(r.For) {
				t.Errorf("%s: for %q is not a Prometheus duration", r.Alert, r.For)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want labels.severity, annotations.summary and annotations.description", r.Alert)
			}
			metrics, unknown := metricNames(r.Expr)
			if len(unknown) > 0 {
				t.Errorf("%s: expr uses %v: not metrics of the node, nor known keywords or functions", r.Alert, unknown)
			}
			if len(metrics) == 0 {
				t.Errorf("%s: expr uses no datamesh_ metric", r.Alert)
			}
			for _, name := range metrics {
				if !exported[name] {
					t.Errorf("%s: expr uses %s, which the node does not export (it exports %v)", r.Alert, name, sortedKeys(exported))
				}
			}
		}
	}
	want := []string{"DataMeshProjectionStalled", "DataMeshLinkLagging", "DataMeshDeadLettersGrowing", "DataMeshStorageNearLimit", "DataMeshFsyncSlow"}
	if strings.Join(alerts, ",") != strings.Join(want, ",") {
		t.Errorf("got alerts %v, want %v", alerts, want)
	}
}
