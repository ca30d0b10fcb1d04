package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

func newDeleteCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "delete (export | link) NAME",
		Short: "Delete an export (and the copies its peers read) or a link (its checkpoint stays)",
		Long: `delete stops an export or a link and forgets its definition.

Deleting an export deletes the stream each of its peers reads: they can no
longer read what it exported. Deleting a link keeps its checkpoint and dead
letters: a link applied again under the same name resumes where it stopped.
Events already imported stay in this node's log.`,
		Args: positional("export|link", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.with(func(c *client.Client) error {
				r, err := c.Delete(args[0], args[1])
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), r)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s deleted\n", strings.ToLower(r.Kind), r.Name)
				return nil
			})
		},
	}
	cf.register(cmd)
	return cmd
}
