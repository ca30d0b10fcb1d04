package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

func newCatalogCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Print the node's catalog: its event types and their contracts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.with(func(c *client.Client) error {
				cat, err := c.Catalog()
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), cat)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "node %s (datamesh %s), events on %s\n\n", cat.Node, cat.Version, cat.SubjectPattern)
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "AGGREGATE\tTYPE\tVERSION\tOWNER\tDESCRIPTION")
				for _, e := range cat.EventTypes {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.Aggregate, e.Type, e.Version, e.Owner, e.Description)
				}
				return tw.Flush()
			})
		},
	}
	cf.register(cmd)
	return cmd
}
