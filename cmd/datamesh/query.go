package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/projection"
)

func newQueryCmd() *cobra.Command {
	var (
		cf                   clientFlags
		f                    projection.Filter
		eq, gt, gte, lt, lte string
		minSeq, atSeq        uint64
		timeoutMS, version   int
	)
	cmd := &cobra.Command{
		Use:   "query PROJECTION (get KEY | list | count | history KEY)",
		Short: "Query a projection",
		Example: `  datamesh query orders get o-1
  datamesh query orders list --index by_status --eq placed
  datamesh query orders list --index by_total --gte 10 --lt 50 --desc
  datamesh query orders count --index by_customer --eq alice
  datamesh query orders get o-1 --min-seq 42`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := projection.Query{MinSeq: minSeq, TimeoutMS: timeoutMS, Version: version, AtSeq: atSeq}
			f.Eq, f.Gt, f.Gte, f.Lt, f.Lte = jsonArg(eq), jsonArg(gt), jsonArg(gte), jsonArg(lt), jsonArg(lte)
			op := args[1]
			switch {
			case (op == "get" || op == "history") && len(args) == 3:
				if op == "get" {
					q.Get = &args[2]
				} else {
					q.History = &args[2]
				}
			case op == "list" && len(args) == 2:
				q.List = &f
			case op == "count" && len(args) == 2:
				q.Count = &f
			default:
				return fmt.Errorf("want: query PROJECTION get KEY | list | count | history KEY")
			}
			return cf.with(func(c *client.Client) error {
				r, err := c.Query(args[0], q)
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), r)
				}
				return printResult(cmd, r)
			})
		},
	}
	cf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.Index, "index", "", "index to list by")
	fl.StringVar(&eq, "eq", "", "index value (JSON, or a plain string)")
	fl.StringVar(&gt, "gt", "", "index lower bound, exclusive")
	fl.StringVar(&gte, "gte", "", "index lower bound, inclusive")
	fl.StringVar(&lt, "lt", "", "index upper bound, exclusive")
	fl.StringVar(&lte, "lte", "", "index upper bound, inclusive")
	fl.StringVar(&f.Prefix, "prefix", "", "key prefix")
	fl.IntVar(&f.Limit, "limit", 0, "page size (default 100)")
	fl.StringVar(&f.After, "after", "", "cursor from the previous page")
	fl.BoolVar(&f.Desc, "desc", false, "descending order")
	fl.Uint64Var(&minSeq, "min-seq", 0, "wait until the projection has applied this seq")
	fl.IntVar(&timeoutMS, "timeout-ms", 0, "how long --min-seq may wait (default 5000)")
	fl.IntVar(&version, "version", 0, "query this version instead of the active one")
	fl.Uint64Var(&atSeq, "at-seq", 0, "with get: the document as it was at this seq")
	return cmd
}

// jsonArg reads a flag value as JSON, or as a string when it is not JSON.
func jsonArg(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

func printResult(cmd *cobra.Command, r *projection.Result) error {
	out := cmd.OutOrStdout()
	switch {
	case r.Count != nil:
		fmt.Fprintf(out, "%d\n", *r.Count)
	case r.History != nil:
		tw := newTable(out)
		fmt.Fprintln(tw, "SEQ\tDOCUMENT")
		for _, v := range r.History {
			fmt.Fprintf(tw, "%d\t%s\n", v.Seq, v.Doc)
		}
		return tw.Flush()
	case r.Docs != nil || r.Next != nil:
		tw := newTable(out)
		fmt.Fprintln(tw, "KEY\tDOCUMENT")
		for _, d := range r.Docs {
			fmt.Fprintf(tw, "%s\t%s\n", d.Key, d.Doc)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if r.Next != nil && *r.Next != "" {
			fmt.Fprintf(out, "(more: --after %s)\n", *r.Next)
		}
	default:
		fmt.Fprintf(out, "%s\n", r.Doc)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "(as of seq %d)\n", r.Seq)
	return nil
}
