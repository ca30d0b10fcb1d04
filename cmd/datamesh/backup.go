package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
)

func newBackupCmd() *cobra.Command {
	var cf clientFlags
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Take a consistent backup of a running node (log, registry, link checkpoints, exports)",
		Long: `backup asks a running node for a backup and writes it to FILE: the event
log, the registry, the link checkpoints and dead letters, and the export
streams, each through JetStream's snapshot API, in an order that keeps them
consistent with each other while the node keeps working. Projections are
not in it: a restored node rebuilds them from the log.

The file is written as FILE.partial and renamed once the node's checksum
matches what arrived; FILE must not exist. Restore it with datamesh restore.
See docs/backup.md.`,
		Example: `  datamesh backup --out orders-$(date +%F).dmbackup`,
		Args:    positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE is required")
			}
			return cf.with(func(c *client.Client) error { return runBackup(cmd, c, out, cf.json) })
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&out, "out", "", "file to write the backup to (must not exist)")
	return cmd
}

func runBackup(cmd *cobra.Command, c *client.Client, out string, asJSON bool) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists: choose another file", out)
	}
	partial := out + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(partial) // a no-op once renamed
	bar := newBytesBar(cmd.ErrOrStderr(), "backup")
	var node string
	end, err := c.Backup(cmd.Context(), f, client.BackupOptions{
		Begin: func(b protocol.BackupBegin) {
			node = b.Node
			bar.Describe("backup " + b.Node)
		},
		Progress: func(n int64) { _ = bar.Set64(n) },
	})
	_ = bar.Finish()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(partial, out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), end)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "backup of node %s written to %s: %d bytes, sha256 %s\n", node, out, end.Size, end.SHA256)
	tw := newTable(w)
	fmt.Fprintln(tw, "ACCOUNT\tSTREAM\tMESSAGES\tFIRST SEQ\tLAST SEQ")
	for _, s := range end.Streams {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", s.Account, s.Stream, s.Messages, firstSeq(s.Messages, s.FirstSeq), s.LastSeq)
	}
	return tw.Flush()
}

// firstSeq is a stream's first seq for a table: "-" when it is empty (JetStream
// says 0 or last+1 then, depending on who asks).
func firstSeq(messages, first uint64) string {
	if messages == 0 {
		return "-"
	}
	return strconv.FormatUint(first, 10)
}

// bytesBar is a progress bar of bytes on w, drawn only when w is a
// terminal: a log or a pipe gets no control characters.
type bytesBar interface {
	Describe(string)
	Set64(int64) error
	Finish() error
}

func newBytesBar(w io.Writer, desc string) bytesBar {
	if !isTerminal(w) {
		return noBar{}
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

type noBar struct{}

func (noBar) Describe(string)   {}
func (noBar) Set64(int64) error { return nil }
func (noBar) Finish() error     { return nil }

// isTerminal reports whether w is a terminal: progress bars and screen
// clearing go only there (a pipe, a file or /dev/null gets plain lines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// absPath is p made absolute for messages, or p if that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
