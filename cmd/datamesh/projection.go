package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

func newProjectionCmd() *cobra.Command {
	cmd := groupCmd("projection", "Manage projections: promote, roll back, retire, retry versions")
	var (
		cf      clientFlags
		version int
	)
	retry := &cobra.Command{
		Use:   "retry NAME",
		Short: "Resume a failed projection version from its checkpoint",
		Args:  positional("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.with(func(c *client.Client) error {
				st, err := c.Retry(args[0], version)
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), st)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "projection %s v%d restarted from seq %d\n", st.Name, st.Version, st.Applied)
				return nil
			})
		},
	}
	cf.register(retry)
	retry.Flags().IntVar(&version, "version", 0, "version to retry (default: the active one)")
	cmd.AddCommand(retry, aliasCmd("promote NAME VERSION", "Make a live projection version the active one", 2,
		func(c *client.Client, args []string, v int) (string, error) {
			r, err := c.Promote(args[0], v)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("projection %s: v%d is active (was v%d)", r.Name, r.Active, r.Previous), nil
		}), aliasCmd("rollback NAME", "Make the previously active version active again", 1,
		func(c *client.Client, args []string, _ int) (string, error) {
			r, err := c.Rollback(args[0])
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("projection %s: v%d is active again (was v%d)", r.Name, r.Active, r.Previous), nil
		}), aliasCmd("retire NAME VERSION", "Stop a version that is not active and delete its file", 2,
		func(c *client.Client, args []string, v int) (string, error) {
			r, err := c.Retire(args[0], v)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("projection %s: v%d retired", r.Name, r.Version), nil
		}))
	return cmd
}

// aliasCmd builds a projection subcommand that takes NAME [VERSION] and prints one line.
func aliasCmd(use, short string, nargs int, do func(*client.Client, []string, int) (string, error)) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  positional(strings.Fields(use)[1:]...),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := 0
			if nargs == 2 {
				var err error
				if v, err = strconv.Atoi(strings.TrimPrefix(args[1], "v")); err != nil {
					return fmt.Errorf("version %q: want a number", args[1])
				}
			}
			return cf.with(func(c *client.Client) error {
				line, err := do(c, args, v)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), line)
				return nil
			})
		},
	}
	cf.register(cmd)
	return cmd
}
