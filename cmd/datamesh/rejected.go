package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func newRejectedCmd() *cobra.Command {
	var (
		cf        clientFlags
		aggregate string
	)
	cmd := &cobra.Command{
		Use:   "rejected [--aggregate A] [--json]",
		Short: "List the appends published without a reply that the node refused, with their error",
		Long: `rejected lists the rejected record: events published to dm.append
without a reply subject (fire and forget, as the CloudEvents SDKs' NATS
senders do) that the node refused (contract, bad input, version conflict,
too large, unavailable). Nobody heard their error, so the node keeps each,
with the error, for 7 days or 256 MiB (the oldest go first), and announces it
on dm.rejected.<aggregate>. Fix the cause (a contract, say), then
"datamesh rejected replay" appends them again.`,
		Example: `  datamesh rejected
  datamesh rejected --aggregate order --json
  datamesh rejected replay          # every rejected event
  datamesh rejected replay 3 4`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.with(func(c *client.Client) error {
				evs, err := c.Rejected(aggregate)
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), evs)
				}
				return printRejected(cmd.OutOrStdout(), evs)
			})
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&aggregate, "aggregate", "", "only the events of this aggregate")
	cmd.AddCommand(newRejectedReplayCmd())
	return cmd
}

func printRejected(w io.Writer, evs []protocol.RejectedEvent) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "SEQ\tAGGREGATE\tTYPE\tID\tAT\tERROR")
	for _, ev := range evs {
		msg := ""
		if ev.Error != nil {
			msg = ev.Error.Code + ": " + ev.Error.Message
		}
		fmt.Fprintf(tw, "%d\t%s/%s\t%s\t%s\t%s\t%s\n", ev.Seq, ev.Aggregate, ev.AggregateID, dash(ev.Type), dash(ev.ID),
			ev.At.Format(time.RFC3339), msg)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newRejectedReplayCmd() *cobra.Command {
	var (
		cf        clientFlags
		aggregate string
	)
	replay := &cobra.Command{
		Use:   "replay [SEQ...]",
		Short: "Append rejected events again (all, or those given), each once",
		Long: `replay runs each rejected event (all of them, those of --aggregate, or
the seqs given) through the node's checks and contracts again, as a request
would, and appends those that pass, once: under the ce-id it was published
with (or the one the node gave it), which the log is searched for first.
Those stored leave the record; those refused again stay, and are printed
with the new error.`,
		Args: positional("[SEQ...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var seqs []uint64
			for _, a := range args {
				s, err := strconv.ParseUint(a, 10, 64)
				if err != nil {
					return fmt.Errorf("seq %q: want a number (the SEQ column of datamesh rejected)", a)
				}
				seqs = append(seqs, s)
			}
			return cf.with(func(c *client.Client) error {
				r, err := c.ReplayRejected(aggregate, seqs...)
				if err != nil {
					return err
				}
				if cf.json {
					return printJSON(cmd.OutOrStdout(), r)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "replayed %d, failed %d\n", len(r.Replayed), len(r.Failed))
				for _, ev := range r.Failed {
					fmt.Fprintf(cmd.OutOrStdout(), "  seq %d: %s: %s\n", ev.Seq, ev.Error.Code, ev.Error.Message)
				}
				if r.More {
					fmt.Fprintln(cmd.OutOrStdout(), "more rejected events are left: run replay again")
				}
				return nil
			})
		},
	}
	cf.register(replay)
	replay.Flags().StringVar(&aggregate, "aggregate", "", "only the events of this aggregate (without SEQs)")
	return replay
}
