package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

func newReloadCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make a running node read its config again (services, grants, peers, certificates)",
		Long: `reload asks the node to read its config file again, as SIGHUP does, and
apply what may change at run time: services and their grants, insecure,
peers, the TLS certificates and the mesh seed. A removed service's
connections are closed; live connections get their new grants. A config
that is invalid, or that changes anything else (ports, data directory,
durability, ...), is refused whole and the old one stays. Needs an admin
identity when services are configured.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.with(func(c *client.Client) error {
				if err := c.Reload(); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "config reloaded")
				return nil
			})
		},
	}
	cf.register(cmd)
	return cmd
}
