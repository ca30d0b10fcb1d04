package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

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
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(cat.Projections) == 0 {
					return nil
				}
				fmt.Fprintln(cmd.OutOrStdout())
				tw = newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "PROJECTION\tVERSION\tQUERY\tINDEXES\tDESCRIPTION")
				for _, p := range cat.Projections {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Name, p.Version, p.Subject, strings.Join(slices.Sorted(maps.Keys(p.Indexes)), ","), p.Description)
				}
				return tw.Flush()
			})
		},
	}
	cf.register(cmd)
	return cmd
}
