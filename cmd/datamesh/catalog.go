package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func newCatalogCmd() *cobra.Command {
	var (
		cf       clientFlags
		withMesh bool
	)
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Print the node's catalog: event types, projections, exports, links (--mesh: the linked peers' catalogs)",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.with(func(c *client.Client) error {
				get := c.Catalog
				if withMesh {
					get = c.CatalogMesh
				}
				cat, err := get()
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), cat)
				}
				return printCatalog(cmd.OutOrStdout(), cat)
			})
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&withMesh, "mesh", false, "also show what each linked peer exports to this node (its event types and contracts)")
	return cmd
}

// printCatalog prints a catalog as tables: event types, projections,
// exports, links, then each peer's catalog.
func printCatalog(out io.Writer, cat *protocol.Catalog) error {
	fmt.Fprintf(out, "node %s (datamesh %s), events on %s\n\n", cat.Node, cat.Version, cat.SubjectPattern)
	tw := newTable(out)
	fmt.Fprintln(tw, "AGGREGATE\tTYPE\tVERSION\tOWNER\tDESCRIPTION")
	for _, e := range cat.EventTypes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.Aggregate, e.Type, e.Version, e.Owner, e.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(cat.Projections) > 0 {
		fmt.Fprintln(out)
		tw = newTable(out)
		fmt.Fprintln(tw, "PROJECTION\tVERSION\tQUERY\tINDEXES\tDESCRIPTION")
		for _, p := range cat.Projections {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Name, p.Version, p.Subject, strings.Join(slices.Sorted(maps.Keys(p.Indexes)), ","), p.Description)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(cat.Exports) > 0 {
		fmt.Fprintln(out)
		tw = newTable(out)
		fmt.Fprintln(tw, "EXPORT\tTO\tAGGREGATES\tTYPES\tREDACT")
		for _, e := range cat.Exports {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, strings.Join(e.To, ","), strings.Join(e.Aggregates, ","), orAll(e.Types), strings.Join(e.Redact, ","))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(cat.Links) > 0 {
		fmt.Fprintln(out)
		tw = newTable(out)
		fmt.Fprintln(tw, "LINK\tPEER\tEXPORT\tURL")
		for _, l := range cat.Links {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, l.Peer, l.Export, l.URL)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, pc := range cat.Mesh {
		fmt.Fprintf(out, "\npeer %s", pc.Node)
		if pc.Error != "" {
			fmt.Fprintf(out, ": %s\n", pc.Error)
			continue
		}
		fmt.Fprintln(out)
		tw = newTable(out)
		fmt.Fprintln(tw, "EXPORT\tAGGREGATE\tTYPE\tVERSION\tREDACTED\tDESCRIPTION")
		for _, e := range pc.Exports {
			if len(e.EventTypes) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t-\t%s\t(no contract)\n", e.Name, strings.Join(e.Aggregates, ","), orAll(e.Types), strings.Join(e.Redact, ","))
			}
			for _, t := range e.EventTypes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", e.Name, t.Aggregate, t.Type, t.Version, strings.Join(e.Redact, ","), t.Description)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func orAll(types []string) string {
	if len(types) == 0 {
		return "(all)"
	}
	return strings.Join(types, ",")
}
