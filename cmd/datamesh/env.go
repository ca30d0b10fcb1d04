package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/datamesh/datamesh/schemas"
)

// otherEnv are the DATAMESH_ variables that stand for no flag: switches of
// the tests and benchmarks. Every flag of every command has its variable
// too (envName); together they are every variable datamesh reads.
var otherEnv = []string{
	"DATAMESH_TEST_*", "DATAMESH_BENCH_*", "DATAMESH_CHAIN_*",
	"DATAMESH_GEN_FIXTURE", "DATAMESH_REOPEN_FIXTURE",
}

// envName is the variable that stands in for flag f: DATAMESH_<FLAG>, or
// its alias.
func envName(flag string) string {
	if alias, ok := envAliases[flag]; ok {
		return alias
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// knownEnv is the variable of every flag of every command under root.
func knownEnv(root *cobra.Command) []string {
	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	add := func(f *pflag.Flag) { seen[envName(f.Name)] = true }
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// unknownEnv warns about each DATAMESH_ variable of environ that no
// command reads: a typo (DATAMESH_MAX_BATCHES) would otherwise be ignored
// without a word.
func unknownEnv(root *cobra.Command, environ []string) []string {
	known := knownEnv(root)
	suffixes := make([]string, len(known))
	for i, k := range known {
		suffixes[i] = strings.TrimPrefix(k, envPrefix)
	}
	isKnown := func(name string) bool {
		for _, k := range known {
			if k == name {
				return true
			}
		}
		for _, o := range otherEnv {
			if p, ok := strings.CutSuffix(o, "*"); (ok && strings.HasPrefix(name, p)) || o == name {
				return true
			}
		}
		return false
	}
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || isKnown(name) {
			continue
		}
		w := fmt.Sprintf("environment variable %s matches no setting and is ignored", name)
		if near := schemas.Nearest(strings.TrimPrefix(name, envPrefix), suffixes); near != "" {
			w += fmt.Sprintf(" (did you mean %s%s?)", envPrefix, near)
		}
		warnings = append(warnings, w)
	}
	sort.Strings(warnings)
	return warnings
}
