package main

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/backup"
)

type restoreFlags struct {
	in, data, sha256, logLevel string
}

func newRestoreCmd() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore --in FILE --data DIR",
		Short: "Create a node's data directory from a backup (DIR must be empty or absent)",
		Long: `restore checks a backup made by datamesh backup (its layout and every
checksum) and creates a node's data directory from it: it runs a server of
its own on DIR, with no port open, restores every stream through
JetStream's restore API and checks it against the backup. It refuses a DIR
that is not empty. No node runs during the restore.

Start the node on DIR with the name the backup was taken from (it is the
JetStream domain) and the same peers. Projections are rebuilt from the log
when it starts; links resume from their checkpoints without importing an
event twice. See docs/backup.md.`,
		Example: `  datamesh restore --in orders.dmbackup --data ./data-restored
  datamesh node --name orders --data ./data-restored`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.in == "" || f.data == "" {
				return fmt.Errorf("--in FILE and --data DIR are required")
			}
			return runRestore(cmd, f)
		},
	}
	cmd.Flags().StringVar(&f.in, "in", "", "backup file to restore")
	cmd.Flags().StringVar(&f.data, "data", "", "data directory to create (must be empty or absent)")
	cmd.Flags().StringVar(&f.sha256, "sha256", "", "checksum the file must have (as datamesh backup printed it)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "warn", "trace, debug, info, warn or error")
	return cmd
}

func runRestore(cmd *cobra.Command, f restoreFlags) error {
	logger := hclog.New(&hclog.LoggerOptions{Name: "datamesh", Level: hclog.LevelFromString(f.logLevel), Output: cmd.ErrOrStderr()})
	bar := newBytesBar(cmd.ErrOrStderr(), "restore")
	res, err := backup.Restore(cmd.Context(), f.in, f.data, backup.RestoreOptions{
		SHA256:   f.sha256,
		Progress: func(done, _ int64) { _ = bar.Set64(done) },
	}, logger)
	_ = bar.Finish()
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	m := res.Manifest
	fmt.Fprintf(w, "restored node %s (backup of %s, DataMesh %s, sha256 %s) into %s\n",
		m.Node, m.Created.Format("2006-01-02 15:04:05Z07:00"), m.Version, res.SHA256, absPath(f.data))
	tw := newTable(w)
	fmt.Fprintln(tw, "ACCOUNT\tSTREAM\tMESSAGES\tFIRST SEQ\tLAST SEQ")
	for _, s := range res.Streams {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", s.Account, s.Name, s.State.Messages, firstSeq(s.State.Messages, s.State.FirstSeq), s.State.LastSeq)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "start it with: datamesh node --name %s --data %s (and the same peers); projections are rebuilt from the log\n", m.Node, f.data)
	return nil
}
