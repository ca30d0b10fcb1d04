package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// waitPoll is how often --wait asks the node for progress.
const waitPoll = 200 * time.Millisecond

// waitLive shows a progress bar for each projection version in results
// until it is live, and promotes it if promote is set.
func waitLive(cmd *cobra.Command, c *client.Client, results []protocol.ApplyResult, promote bool) error {
	for _, r := range results {
		if r.Kind != projection.KindProjection {
			continue
		}
		if err := waitOne(cmd, c, r.Name, r.Version); err != nil {
			return err
		}
		if promote {
			a, err := c.Promote(r.Name, r.Version)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "projection %s: v%d is active (was v%d)\n", a.Name, a.Active, a.Previous)
		}
	}
	return nil
}

func waitOne(cmd *cobra.Command, c *client.Client, name string, version int) error {
	p := newWaitProgress(cmd.ErrOrStderr(), name, version)
	defer p.finish()
	for {
		st, err := findStatus(c, name, version)
		if err != nil {
			return err
		}
		switch st.State {
		case projection.StateLive:
			p.finish()
			fmt.Fprintf(cmd.OutOrStdout(), "projection %s v%d is live at seq %d\n", name, version, st.Applied)
			return nil
		case projection.StateFailed, projection.StateStopped:
			p.finish()
			return fmt.Errorf("projection %s v%d is %s: %s", name, version, st.State, st.LastError)
		}
		p.update(st)
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(waitPoll):
		}
	}
}

// waitProgress shows how a version that is not live yet gets on: a bar on
// a terminal, drawn from the first status that is not live; elsewhere (a
// pipe, a log) one plain line each time the state changes.
type waitProgress struct {
	w         io.Writer
	desc      string
	terminal  bool
	bar       *progressbar.ProgressBar
	lastState string
}

func newWaitProgress(w io.Writer, name string, version int) *waitProgress {
	return &waitProgress{w: w, desc: fmt.Sprintf("%s v%d", name, version), terminal: isTerminal(w)}
}

func (p *waitProgress) update(st projection.Status) {
	if !p.terminal {
		if st.State != p.lastState {
			fmt.Fprintf(p.w, "projection %s %s: %s, %.0f%%%s\n", p.desc, st.State, seqText(st), 100*st.Progress, rateText(st))
		}
		p.lastState = st.State
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions(1000,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	p.bar.Describe(fmt.Sprintf("%s %s: %s%s", p.desc, st.State, seqText(st), rateText(st))) // the bar shows the %
	_ = p.bar.Set(int(1000 * min(max(st.Progress, 0), 1)))
}

// finish clears the bar; it may be called more than once.
func (p *waitProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

func seqText(st projection.Status) string {
	return fmt.Sprintf("seq %d of %d", st.Applied, st.Head)
}

// rateText is ", N events/s", or nothing when the rate rounds to 0 (a
// version waiting for events, or one just started).
func rateText(st projection.Status) string {
	if st.Rate < 0.5 {
		return ""
	}
	return fmt.Sprintf(", %.0f events/s", st.Rate)
}

func findStatus(c *client.Client, name string, version int) (projection.Status, error) {
	r, err := c.Projections()
	if err != nil {
		return projection.Status{}, err
	}
	for _, s := range r.Projections {
		if s.Name == name && s.Version == version {
			return s, nil
		}
	}
	return projection.Status{}, fmt.Errorf("projection %s v%d not found", name, version)
}
