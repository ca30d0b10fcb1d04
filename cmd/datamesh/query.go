package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
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
		Args: queryArgs,
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

// queryOps are query's operations and whether each takes a KEY.
var queryOps = map[string]bool{"get": true, "list": false, "count": false, "history": true}

// queryArgs checks query's arguments and names what is missing or wrong.
func queryArgs(cmd *cobra.Command, args []string) error {
	const needs = "query needs PROJECTION (get KEY | list | count | history KEY)"
	if len(args) < 2 {
		return fmt.Errorf("%s: missing %s", needs, []string{"PROJECTION and an operation", "an operation"}[len(args)])
	}
	withKey, ok := queryOps[args[1]]
	switch {
	case !ok:
		msg := fmt.Sprintf("%s: unknown operation %q", needs, args[1])
		if near := schemas.Nearest(args[1], []string{"get", "list", "count", "history"}); near != "" {
			msg += fmt.Sprintf(": did you mean %s?", near)
		}
		return errors.New(msg)
	case withKey && len(args) == 2:
		return fmt.Errorf("%s: missing KEY after %s", needs, args[1])
	case !withKey && len(args) > 2:
		return fmt.Errorf("%s: %s takes no KEY (unexpected %s)", needs, args[1], quoteAll(args[2:]))
	case len(args) > 3:
		return fmt.Errorf("%s: unexpected %s", needs, quoteAll(args[3:]))
	}
	return nil
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
