package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/datamesh/datamesh/node"
)

// nodeFlags are the `datamesh node` flags; each one also reads DATAMESH_<FLAG>.
type nodeFlags struct {
	config        string
	cfg           node.Config
	dedupWindow   time.Duration
	clusterListen string
	routes        []string
}

func (f *nodeFlags) register(fs *pflag.FlagSet) {
	d := node.DefaultConfig()
	fs.StringVar(&f.config, "config", "", "YAML config file (flags and env override it)")
	fs.StringVar(&f.cfg.Name, "name", d.Name, "node name, also its JetStream domain")
	fs.StringVar(&f.cfg.DataDir, "data", d.DataDir, "data directory")
	fs.StringVar(&f.cfg.Listen, "listen", d.Listen, "NATS client address host:port")
	fs.StringVar(&f.cfg.HTTP, "http", d.HTTP, "HTTP monitoring address host:port (empty disables)")
	fs.StringVar(&f.cfg.LeafListen, "leaf-listen", d.LeafListen, "leafnode address host:port for mesh links (empty disables)")
	fs.BoolVar(&f.cfg.RequireContracts, "require-contracts", d.RequireContracts, "refuse event types that have no contract")
	fs.IntVar(&f.cfg.MaxEventBytes, "max-event-bytes", d.MaxEventBytes, "largest event data accepted")
	fs.IntVar(&f.cfg.MaxBatch, "max-batch", d.MaxBatch, "most events in one atomic batch (1 to 1000)")
	fs.Int64Var(&f.cfg.MaxLogBytes, "max-log-bytes", d.MaxLogBytes, "largest size of the event log on disk; appends beyond it are refused (0: unlimited)")
	fs.DurationVar(&f.dedupWindow, "dedup-window", time.Duration(d.DedupWindow), "how long a ce-id is remembered for idempotent appends")
	fs.StringVar(&f.cfg.LogLevel, "log-level", d.LogLevel, "trace, debug, info, warn or error")
	fs.StringVar(&f.cfg.LogFormat, "log-format", d.LogFormat, "text or json (one object per line)")
	fs.StringVar(&f.cfg.Durability, "durability", d.Durability, "os (survives a process crash) or fsync (survives a power loss)")
	fs.BoolVar(&f.cfg.Insecure, "insecure", d.Insecure, "allow listening off loopback with no services configured (anonymous clients get full access)")
	fs.StringVar(&f.cfg.ServerName, "server-name", "", "this server's name, unique in a cluster (default: the node name, or the host name in a cluster)")
	fs.StringVar(&f.clusterListen, "cluster-listen", "", "route address host:port: makes the node one server of a JetStream cluster")
	fs.StringSliceVar(&f.routes, "routes", nil, "the cluster's other servers, nats-route://host:port (comma-separated)")
	fs.IntVar(&f.cfg.Replicas, "replicas", 0, "replicas of the node's streams: 1, 3 or 5 (default 1, or 3 in a cluster)")
}

// cluster is cfg's cluster block, made when a cluster flag is given.
func (f *nodeFlags) cluster(cfg *node.Config) *node.Cluster {
	if cfg.Cluster == nil {
		cfg.Cluster = &node.Cluster{}
	}
	return cfg.Cluster
}

// Config builds the node config: defaults, then the config file, then every
// flag that was set on the command line or through the environment.
func (f *nodeFlags) Config(fs *pflag.FlagSet) (node.Config, error) {
	cfg := node.DefaultConfig()
	if f.config != "" {
		if err := node.LoadConfigFile(&cfg, f.config); err != nil {
			return cfg, err
		}
	}
	set := map[string]func(){
		"name":              func() { cfg.Name = f.cfg.Name },
		"data":              func() { cfg.DataDir = f.cfg.DataDir },
		"listen":            func() { cfg.Listen = f.cfg.Listen },
		"http":              func() { cfg.HTTP = f.cfg.HTTP },
		"leaf-listen":       func() { cfg.LeafListen = f.cfg.LeafListen },
		"require-contracts": func() { cfg.RequireContracts = f.cfg.RequireContracts },
		"max-event-bytes":   func() { cfg.MaxEventBytes = f.cfg.MaxEventBytes },
		"max-batch":         func() { cfg.MaxBatch = f.cfg.MaxBatch },
		"max-log-bytes":     func() { cfg.MaxLogBytes = f.cfg.MaxLogBytes },
		"dedup-window":      func() { cfg.DedupWindow = node.Duration(f.dedupWindow) },
		"log-level":         func() { cfg.LogLevel = f.cfg.LogLevel },
		"log-format":        func() { cfg.LogFormat = f.cfg.LogFormat },
		"durability":        func() { cfg.Durability = f.cfg.Durability },
		"insecure":          func() { cfg.Insecure = f.cfg.Insecure },
		"server-name":       func() { cfg.ServerName = f.cfg.ServerName },
		"replicas":          func() { cfg.Replicas = f.cfg.Replicas },
		"cluster-listen":    func() { f.cluster(&cfg).Listen = f.clusterListen },
		"routes":            func() { f.cluster(&cfg).Routes = f.routes },
	}
	fs.Visit(func(fl *pflag.Flag) {
		if apply, ok := set[fl.Name]; ok {
			apply()
		}
	})
	return cfg, cfg.Validate()
}

func newNodeCmd() *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a DataMesh node: the service's NATS server, event log and API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.Config(cmd.Flags())
			if err != nil {
				return err
			}
			source := func() (node.Config, error) { return f.Config(cmd.Flags()) }
			return runNode(cmd, cfg, source, cmd.ErrOrStderr(), unknownEnv(cmd.Root(), os.Environ()))
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// runNode runs the node until cmd's context ends; warnings are logged
// first. SIGHUP reads the config again from source and applies it.
func runNode(cmd *cobra.Command, cfg node.Config, source node.ConfigSource, logOut io.Writer, warnings []string) error {
	logger := node.NewLogger(cfg, logOut)
	for _, w := range warnings {
		logger.Warn(w)
	}
	n, err := node.New(cfg, logger)
	if err != nil {
		return err
	}
	n.SetConfigSource(source)
	ctx := cmd.Context()
	if err := n.Start(ctx); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for ctx.Err() == nil {
		select {
		case <-hup:
			logger.Info("SIGHUP: reading the config again")
			_ = n.ReloadFromSource() // logged by the node; the old config stays on error
		case <-ctx.Done():
		}
	}
	logger.Info("shutting down")
	return n.Close()
}
