package main

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/protocol"
)

type restoreFlags struct {
	in, data, sha256, logLevel string
	client                     clientFlags
}

func newRestoreCmd() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore --in FILE (--data DIR | --server URL)",
		Short: "Restore a backup: into a new data directory, or into a new, empty cluster",
		Long: `restore checks a backup made by datamesh backup (its layout and every
checksum) and restores it, in one of two ways.

With --data DIR it creates a node's data directory: it runs a server of its
own on DIR, with no port open, restores every stream through JetStream's
restore API and checks it against the backup. It refuses a DIR that is not
empty. No node runs during the restore. Start the node on DIR with the name
the backup was taken from (it is the JetStream domain) and the same peers.

With --server URL it sends the backup to a running clustered node, which
restores it while its servers run: this is how a standalone node moves into
a cluster. The cluster must be new: started on empty data directories with
the standalone node's name and peers, nothing applied. The log and the
export streams are restored with the cluster's replica count, the registry
and the link checkpoints are written into its buckets, and every server
then rebuilds the projections and the mesh resumes. See docs/cluster.md.

Projections are rebuilt from the log either way; links resume from their
checkpoints without importing an event twice. See docs/backup.md.`,
		Example: `  datamesh restore --in orders.dmbackup --data ./data-restored
  datamesh node --name orders --data ./data-restored

  datamesh restore --in orders.dmbackup --server nats://127.0.0.1:4222`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case f.in == "":
				return fmt.Errorf("--in FILE is required")
			case f.data != "":
				return runRestore(cmd, &f)
			case cmd.Flags().Changed("server"):
				return runRestoreOnline(cmd, &f)
			default:
				return fmt.Errorf("--data DIR (a new data directory, no node running) or --server URL (a new, empty cluster) is required")
			}
		},
	}
	cmd.Flags().StringVar(&f.in, "in", "", "backup file to restore")
	cmd.Flags().StringVar(&f.data, "data", "", "data directory to create (must be empty or absent)")
	cmd.Flags().StringVar(&f.sha256, "sha256", "", "checksum the file must have (as datamesh backup printed it)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "warn", "trace, debug, info, warn or error")
	f.client.register(cmd)
	return cmd
}

func runRestore(cmd *cobra.Command, f *restoreFlags) error {
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

// runRestoreOnline sends the backup to a running clustered node
// (dm.admin.restore), which restores it while its servers run.
func runRestoreOnline(cmd *cobra.Command, f *restoreFlags) error {
	nc, _, err := f.client.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	end, err := sendRestore(cmd, nc, f)
	if err != nil {
		return f.client.denied.explain(err, f.client.creds.user)
	}
	if f.client.json {
		return printJSON(cmd.OutOrStdout(), end)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "restored node %s (backup of %s, DataMesh %s, sha256 %s) into the running node through server %s\n",
		end.Node, end.Created, end.Version, end.SHA256, end.Server)
	tw := newTable(w)
	fmt.Fprintln(tw, "ACCOUNT\tSTREAM\tMESSAGES\tFIRST SEQ\tLAST SEQ\tREPLICAS")
	for _, s := range end.Streams {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", s.Account, s.Stream, s.Messages, firstSeq(s.Messages, s.FirstSeq), s.LastSeq, end.Replicas)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = newTable(w)
	fmt.Fprintln(tw, "BUCKET\tKEYS")
	for _, b := range end.Buckets {
		fmt.Fprintf(tw, "%s\t%d\n", b.Bucket, b.Keys)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "every server now rebuilds the projections from the log (datamesh status shows them); links and exports resume from their checkpoints")
	return nil
}

func sendRestore(cmd *cobra.Command, nc *nats.Conn, f *restoreFlags) (*protocol.RestoreEnd, error) {
	bar := newBytesBar(cmd.ErrOrStderr(), "restore")
	defer func() { _ = bar.Finish() }()
	return backup.Send(cmd.Context(), nc, f.in, backup.SendOptions{
		SHA256:   f.sha256,
		Timeout:  f.client.timeout,
		Progress: func(sent, _ int64) { _ = bar.Set64(sent) },
		Ready:    func(r protocol.RestoreReady) { bar.Describe("restore through " + r.Server) },
	})
}
