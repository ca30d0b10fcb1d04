package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

func newStatusCmd() *cobra.Command {
	var (
		cf    clientFlags
		watch time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [--watch [INTERVAL]]",
		Short: "Show every projection version, link and export: state, progress, lag, rate, errors",
		Long: `status prints every projection version, link and export once, or with
--watch every INTERVAL (1s if none is given) until Ctrl-C. On a terminal
each refresh replaces the last; into a pipe or a file the tables follow
each other, separated by a blank line.`,
		Example: `  datamesh status
  datamesh status --watch           # every second
  datamesh status --watch 5s`,
		Args: func(cmd *cobra.Command, args []string) error {
			// --watch 5s: the interval comes as an argument, since --watch
			// alone is allowed too
			if len(args) == 1 && cmd.Flags().Changed("watch") {
				d, err := time.ParseDuration(args[0])
				if err != nil {
					return fmt.Errorf("status --watch %s: want an interval such as 1s or 500ms", args[0])
				}
				watch = d
				args = nil
			}
			if cmd.Flags().Changed("watch") && watch <= 0 {
				return fmt.Errorf("status --watch wants an interval above 0 (for example --watch 1s)")
			}
			return positional()(cmd, args)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.with(func(c *client.Client) error { return runStatus(cmd, c, cf.json, watch) })
		},
	}
	cf.register(cmd)
	cmd.Flags().DurationVar(&watch, "watch", 0, "refresh every interval: --watch, --watch 5s or --watch=5s")
	cmd.Flags().Lookup("watch").NoOptDefVal = "1s"
	return cmd
}

// runStatus prints the status once, or every watch until the command's
// context ends. Only a terminal gets the escapes that clear the screen.
func runStatus(cmd *cobra.Command, c *client.Client, asJSON bool, watch time.Duration) error {
	w := cmd.OutOrStdout()
	clearScreen := watch > 0 && !asJSON && isTerminal(w)
	for frame := 0; ; frame++ {
		r, err := c.Projections()
		if err != nil {
			return err
		}
		m, err := c.Mesh()
		if err != nil {
			return err
		}
		rj, err := c.RejectedStatus()
		if err != nil {
			return err
		}
		byServer := serverStatuses(c, r)
		switch {
		case asJSON:
			err = printJSON(w, struct {
				*protocol.ProjectionsReply
				*protocol.MeshStatus
				Rejected *protocol.RejectedStatus      `json:"rejected"`
				ByServer map[string]*serverProjections `json:"by_server,omitempty"`
			}{r, m, rj, byServer})
		case clearScreen:
			fmt.Fprint(w, "\033[H\033[2J")
		case frame > 0:
			fmt.Fprintln(w)
		}
		if err == nil && !asJSON {
			if byServer != nil {
				err = printServers(w, r.Servers, byServer)
			} else {
				err = printStatus(w, r)
			}
			if err == nil {
				err = printMesh(w, m)
			}
			if err == nil && (rj.Count > 0 || rj.LostSinceStart > 0) {
				_, err = fmt.Fprintf(w, "\nREJECTED: %d published events refused (datamesh rejected lists them), %d not recorded\n",
					rj.Count, rj.LostSinceStart)
			}
		}
		if err != nil || watch <= 0 {
			return err
		}
		select {
		case <-cmd.Context().Done():
			return nil
		case <-time.After(watch):
		}
	}
}

func printStatus(w io.Writer, r *protocol.ProjectionsReply) error {
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
func printMesh(w io.Writer, m *protocol.MeshStatus) error {
	if m.Server != "" && len(m.Links)+len(m.Exports) > 0 {
		fmt.Fprintf(w, "\nlinks and exports run on server %s\n", m.Server)
	}
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

// serverProjections is one server's projections, or why it did not answer.
type serverProjections struct {
	Projections []projection.Status `json:"projections,omitempty"`
	Error       string              `json:"error,omitempty"`
}

// serverStatuses asks each server of a clustered node for its own
// projections; nil for a standalone node.
func serverStatuses(c *client.Client, r *protocol.ProjectionsReply) map[string]*serverProjections {
	if len(r.Servers) < 2 {
		return nil
	}
	out := make(map[string]*serverProjections, len(r.Servers))
	for _, name := range r.Servers {
		sr, err := c.ServerProjections(name)
		if err != nil {
			out[name] = &serverProjections{Error: err.Error()}
			continue
		}
		out[name] = &serverProjections{Projections: sr.Projections}
	}
	return out
}

// printServers prints the projections table of a cluster: one row per
// server and version.
func printServers(w io.Writer, servers []string, by map[string]*serverProjections) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "SERVER\tPROJECTION\tVERSION\tACTIVE\tSTATE\tAPPLIED\tHEAD\tPROGRESS\tLAG\tDOCS\tERROR")
	for _, name := range servers {
		sp := by[name]
		if sp.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tunreachable\t-\t-\t-\t-\t-\t%s\n", name, sp.Error)
			continue
		}
		for _, s := range sp.Projections {
			active := ""
			if s.Active {
				active = "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%.0f%%\t%d\t%d\t%s\n", name, s.Name, s.Version, active, s.State,
				s.Applied, s.Head, 100*s.Progress, s.LagEvents, s.Documents, s.LastError)
		}
	}
	return tw.Flush()
}
