package main

import (
	"fmt"
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
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(cmd.ErrOrStderr()),
		progressbar.OptionSetDescription(fmt.Sprintf("%s v%d", name, version)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	defer bar.Exit()
	for {
		st, err := findStatus(c, name, version)
		if err != nil {
			return err
		}
		if st.Head > 0 {
			bar.ChangeMax64(int64(st.Head))
		}
		_ = bar.Set64(int64(min(st.Applied, st.Head)))
		switch st.State {
		case projection.StateLive:
			_ = bar.Finish()
			fmt.Fprintf(cmd.OutOrStdout(), "projection %s v%d is live at seq %d\n", name, version, st.Applied)
			return nil
		case projection.StateFailed, projection.StateStopped:
			return fmt.Errorf("projection %s v%d is %s: %s", name, version, st.State, st.LastError)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(waitPoll):
		}
	}
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
