package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/client"
)

func newStatusCmd() *cobra.Command {
	var (
		cf    clientFlags
		watch time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every projection version, link and export: state, progress, lag, rate, errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.with(func(c *client.Client) error {
				for {
					r, err := c.Projections()
					if err != nil {
						return err
					}
					m, err := c.Mesh()
					if err != nil {
						return err
					}
					if cf.json {
						if err := printJSON(cmd.OutOrStdout(), struct {
							*node.ProjectionsReply
							*node.MeshStatus
						}{r, m}); err != nil {
							return err
						}
					} else {
						if watch > 0 {
							fmt.Fprint(cmd.OutOrStdout(), "\033[H\033[2J")
						}
						if err := printStatus(cmd.OutOrStdout(), r); err != nil {
							return err
						}
						if err := printMesh(cmd.OutOrStdout(), m); err != nil {
							return err
						}
					}
					if watch <= 0 {
						return nil
					}
					select {
					case <-cmd.Context().Done():
						return nil
					case <-time.After(watch):
					}
				}
			})
		},
	}
	cf.register(cmd)
	cmd.Flags().DurationVar(&watch, "watch", 0, "refresh every interval (for example --watch 1s)")
	cmd.Flags().Lookup("watch").NoOptDefVal = "1s"
	return cmd
}

func printStatus(w io.Writer, r *node.ProjectionsReply) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PROJECTION\tVERSION\tACTIVE\tSTATE\tAPPLIED\tHEAD\tPROGRESS\tLAG\tLAG(s)\tEVENTS/s\tETA\tDOCS\tSIZE\tDEAD\tERROR")
	for _, s := range r.Projections {
		active := ""
		if s.Active {
			active = "*"
		}
		eta := "-"
		if s.ETASeconds > 0 {
			eta = (time.Duration(s.ETASeconds) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%.0f%%\t%d\t%.1f\t%.0f\t%s\t%d\t%s\t%d\t%s\n",
			s.Name, s.Version, active, s.State, s.Applied, s.Head, 100*s.Progress, s.LagEvents, s.LagSeconds, s.Rate,
			eta, s.Documents, bytesText(s.FileBytes), s.DeadLetters, s.LastError)
	}
	return tw.Flush()
}

// printMesh prints the links and exports tables, when there are any.
func printMesh(w io.Writer, m *node.MeshStatus) error {
	if len(m.Links) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w)
		fmt.Fprintln(tw, "LINK\tPEER\tEXPORT\tSTATE\tCONNECTED\tORIGIN SEQ\tOWNER HEAD\tLAG\tLAG(s)\tEVENTS/s\tIMPORTED\tFILTERED\tDEAD\tERROR")
		for _, l := range m.Links {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.1f\t%.0f\t%d\t%d\t%d\t%s\n",
				l.Name, l.Peer, l.Export, l.State, yesNo(l.Connected), l.OriginSeq, l.OwnerHeadSeq, l.LagEvents,
				l.LagSeconds, l.Rate, l.Imported, l.Filtered, l.DeadLetters, l.LastError)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(m.Exports) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w)
		fmt.Fprintln(tw, "EXPORT\tPEER\tSTATE\tCONNECTED\tEXPORTED SEQ\tHEAD\tSTREAM SEQ\tPEER READ\tERROR")
		for _, e := range m.Exports {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n",
				e.Name, e.Peer, e.State, yesNo(e.Connected), e.ExportedSeq, e.Head, e.StreamSeq, e.ReadSeq, e.LastError)
		}
		return tw.Flush()
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func newProjectionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "projection", Short: "Manage projections"}
	var (
		cf      clientFlags
		version int
	)
	retry := &cobra.Command{
		Use:   "retry NAME",
		Short: "Resume a failed projection version from its checkpoint",
		Args:  cobra.ExactArgs(1),
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

func newLinkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "link", Short: "Manage mesh links"}
	var cf clientFlags
	retry := &cobra.Command{
		Use:   "retry NAME",
		Short: "Restart a failed link from its checkpoint",
		Args:  cobra.ExactArgs(1),
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
	var dlf clientFlags
	deadLetters := &cobra.Command{
		Use:   "dead-letters NAME",
		Short: "List the events a link could not transform or store, in export order",
		Args:  cobra.ExactArgs(1),
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
	var rf clientFlags
	replay := &cobra.Command{
		Use:   "replay NAME [EXPORT_SEQ...]",
		Short: "Run a link's dead letters (all, or those given) through its transform and contracts again",
		Long: `replay reads each dead letter's event again from the owner's export, runs
the link's current transform and this node's current contracts, and appends
the events that pass (once: an event already in the log is not appended
again). Those that fail again stay, with the new error. Replayed events come
after the events imported since.`,
		Args: cobra.MinimumNArgs(1),
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
	cmd.AddCommand(retry, deadLetters, replay)
	return cmd
}

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
		Args: cobra.ExactArgs(2),
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

// aliasCmd builds a projection subcommand that takes NAME [VERSION] and prints one line.
func aliasCmd(use, short string, nargs int, do func(*client.Client, []string, int) (string, error)) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nargs),
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
