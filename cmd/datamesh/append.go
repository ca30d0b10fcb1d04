package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

func newAppendCmd() *cobra.Command {
	var (
		cf     clientFlags
		opts   client.AppendOptions
		expect int64
	)
	cmd := &cobra.Command{
		Use:   "append AGGREGATE ID TYPE [DATA]",
		Short: "Append one event to an aggregate and print its seq",
		Long: `append stores one event of type TYPE for the aggregate instance ID.
DATA is the event's data: inline JSON, @FILE to read it from a file, or -
to read it from stdin. Without DATA the event's data is {} (an empty
object), and a note on stderr says so.`,
		Example: `  datamesh append order o-1 OrderPlaced '{"customer":"c-1","total":30}' --expect 0
  datamesh append order o-1 OrderShipped @shipped.json --id ship-o-1`,
		Args: positional("AGGREGATE", "ID", "TYPE", "[DATA]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := []byte("{}")
			if len(args) < 4 {
				fmt.Fprintln(cmd.ErrOrStderr(), "(no DATA given: the event's data is {})")
			} else {
				var err error
				if data, err = readData(args[3], cmd.InOrStdin()); err != nil {
					return err
				}
			}
			if expect >= 0 {
				opts.ExpectedVersion = client.Expect(uint64(expect))
			}
			return cf.with(func(c *client.Client) error {
				r, err := c.Append(args[0], args[1], args[2], data, opts)
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), r)
				}
				note := ""
				if r.Duplicate {
					note = " (duplicate: already stored)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "appended %s/%s %s at seq %d%s\n", args[0], args[1], args[2], r.Seq, note)
				return nil
			})
		},
	}
	cf.register(cmd)
	cmd.Flags().Int64Var(&expect, "expect", -1, "expected version: seq of the aggregate's last event, 0 for a new aggregate")
	cmd.Flags().StringVar(&opts.ID, "id", "", "event id (ce-id): the same id is stored once")
	cmd.Flags().StringVar(&opts.Source, "source", "", "event source (ce-source)")
	return cmd
}

// readData reads the event data argument: inline JSON, @file or - for stdin.
func readData(arg string, stdin io.Reader) ([]byte, error) {
	switch {
	case arg == "-":
		return io.ReadAll(stdin)
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("read data: %w", err)
		}
		return b, nil
	}
	return []byte(arg), nil
}
