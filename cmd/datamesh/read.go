package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func newReadCmd() *cobra.Command {
	var (
		cf  clientFlags
		req protocol.ReadRequest
		all bool
	)
	cmd := &cobra.Command{
		Use:   "read AGGREGATE [ID]",
		Short: "Print an aggregate's events, or a whole category's, in log order",
		Args:  positional("AGGREGATE", "[ID]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 2 {
				id = args[1]
			}
			return cf.with(func(c *client.Client) error {
				var r *protocol.ReadReply
				if all {
					events, err := c.ReadAll(args[0], id)
					if err != nil {
						return err
					}
					r = &protocol.ReadReply{Events: events}
				} else {
					var err error
					if r, err = c.Read(args[0], id, req); err != nil {
						return err
					}
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), r)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "SEQ\tAGGREGATE\tTYPE\tTIME\tDATA")
				for _, e := range r.Events {
					fmt.Fprintf(tw, "%d\t%s/%s\t%s\t%s\t%s\n", e.Seq, e.Aggregate, e.AggregateID, e.Type, e.Time, e.Data)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if r.NextSeq != 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "(more: --from %d, or --all)\n", r.NextSeq)
				}
				return nil
			})
		},
	}
	cf.register(cmd)
	cmd.Flags().Uint64Var(&req.FromSeq, "from", 0, "first seq to read")
	cmd.Flags().IntVar(&req.Limit, "limit", 0, "most events to return (default 1000)")
	cmd.Flags().BoolVar(&all, "all", false, "follow pages until the end")
	return cmd
}
