package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

func newLinkCmd() *cobra.Command {
	cmd := groupCmd("link", "Manage mesh links: retry, dead letters, replay")
	var cf clientFlags
	retry := &cobra.Command{
		Use:   "retry NAME",
		Short: "Restart a failed link from its checkpoint",
		Args:  positional("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.with(func(c *client.Client) error {
				if err := c.RetryLink(args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "link %s restarted from its checkpoint\n", args[0])
				return nil
			})
		},
	}
	cf.register(retry)
	cmd.AddCommand(retry, newLinkDeadLettersCmd(), newLinkReplayCmd())
	return cmd
}

func newLinkDeadLettersCmd() *cobra.Command {
	var dlf clientFlags
	deadLetters := &cobra.Command{
		Use:   "dead-letters NAME",
		Short: "List the events a link could not transform or store, in export order",
		Args:  positional("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dlf.with(func(c *client.Client) error {
				dls, err := c.DeadLetters(args[0])
				if err != nil {
					return err
				}
				if dlf.json {
					return printJSON(cmd.OutOrStdout(), dls)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "EXPORT SEQ\tORIGIN SEQ\tEVENT\tAT\tERROR")
				for _, dl := range dls {
					fmt.Fprintf(tw, "%d\t%d\t%s.%s %s\t%s\t%s\n", dl.ExportSeq, dl.OriginSeq, dl.Aggregate, dl.ID, dl.Type,
						dl.At.Format(time.RFC3339), dl.Error)
				}
				return tw.Flush()
			})
		},
	}
	dlf.register(deadLetters)
	return deadLetters
}

func newLinkReplayCmd() *cobra.Command {
	var rf clientFlags
	replay := &cobra.Command{
		Use:   "replay NAME [EXPORT_SEQ...]",
		Short: "Run a link's dead letters (all, or those given) through its transform and contracts again",
		Long: `replay reads each dead letter's event again from the owner's export, runs
the link's current transform and this node's current contracts, and appends
the events that pass (once: an event already in the log is not appended
again). Those that fail again stay, with the new error. Replayed events come
after the events imported since.`,
		Args: positional("NAME", "[EXPORT_SEQ...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var seqs []uint64
			for _, a := range args[1:] {
				s, err := strconv.ParseUint(a, 10, 64)
				if err != nil {
					return fmt.Errorf("export seq %q: want a number", a)
				}
				seqs = append(seqs, s)
			}
			return rf.with(func(c *client.Client) error {
				r, err := c.Replay(args[0], seqs...)
				if err != nil {
					return err
				}
				if rf.json {
					return printJSON(cmd.OutOrStdout(), r)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "replayed %d, filtered %d, failed %d\n", len(r.Replayed), len(r.Filtered), len(r.Failed))
				for _, dl := range r.Failed {
					fmt.Fprintf(cmd.OutOrStdout(), "  export seq %d: %s\n", dl.ExportSeq, dl.Error)
				}
				return nil
			})
		},
	}
	rf.register(replay)
	return replay
}
