package main

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/bench"
)

func newBenchCmd() *cobra.Command {
	var (
		quick, asJSON bool
		only          []string
		durabilities  []string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the hot paths against raw JetStream and BuntDB in the same run",
		Long: `bench starts fresh nodes in temporary directories, runs each scenario, and
prints the DataMesh figure, the raw figure measured the same way in the same
run, their ratio and the target. --quick runs a reduced size.`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := bench.Options{Sizes: bench.Reference, Only: only, Durabilities: durabilities,
				Logger: hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Warn, Output: cmd.ErrOrStderr()})}
			if quick {
				o.Sizes = bench.Quick
			}
			if !asJSON {
				o.Progress = func(name string) { fmt.Fprintf(cmd.ErrOrStderr(), "running %s…\n", name) }
			}
			results, err := bench.Run(cmd.Context(), o)
			if asJSON {
				if perr := printJSON(cmd.OutOrStdout(), results); perr != nil {
					return perr
				}
			} else {
				printBench(cmd, results)
			}
			if err != nil {
				return err
			}
			for _, r := range results {
				if r.Pass != nil && !*r.Pass {
					fmt.Fprintf(cmd.ErrOrStderr(), "target missed: %s\n", r.Name)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&quick, "quick", false, "reduced sizes: under a minute on 2 cores")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: one object per scenario")
	cmd.Flags().StringSliceVar(&only, "only", nil, "run only these scenarios (comma-separated names)")
	cmd.Flags().StringSliceVar(&durabilities, "durability", []string{node.DurabilityOS, node.DurabilityFsync}, "node modes for the append scenarios")
	return cmd
}

func printBench(cmd *cobra.Command, results []bench.Result) {
	tw := newTable(cmd.OutOrStdout())
	fmt.Fprintln(tw, "SCENARIO\tDATAMESH\tRAW\tRATIO\tTARGET\tRESULT\tNOTE")
	for _, r := range results {
		raw, ratio, res := "-", "-", "reported"
		if r.Raw > 0 {
			raw, ratio = fmt.Sprintf("%.0f", r.Raw), fmt.Sprintf("%.2f", r.Ratio)
		}
		if r.Pass != nil {
			res = map[bool]string{true: "pass", false: "FAIL"}[*r.Pass]
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\t%s\n", r.Name, trimFloat(r.Value), r.Unit, raw, ratio, r.Target, res, r.Note)
	}
	tw.Flush()
	fmt.Fprintf(cmd.OutOrStdout(), "\n(%d cores; ratios compare with raw figures of the same run)\n", cpus())
}

// trimFloat prints v with two decimals below 100, none above, without
// trailing zeros after the point (23390 stays 23390: it once printed 2339).
func trimFloat(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func cpus() int { return runtime.NumCPU() }
