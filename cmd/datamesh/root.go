package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix names the environment variables that stand in for flags:
// --leaf-listen is DATAMESH_LEAF_LISTEN.
const envPrefix = "DATAMESH_"

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "datamesh",
		Short:         "DataMesh: an event store and read models for one microservice, on embedded NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	asGroup(root)
	root.SetFlagErrorFunc(flagError)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newNodeCmd(),
		newApplyCmd(),
		newAppendCmd(),
		newReadCmd(),
		newCatalogCmd(),
		newQueryCmd(),
		newStatusCmd(),
		newProjectionCmd(),
		newLinkCmd(),
		newDeleteCmd(),
		newBenchCmd(),
		newTailCmd(),
		newBackupCmd(), newRestoreCmd(),
		newRejectedCmd(),
		newKeysCmd(),
		newReloadCmd(),
	)
	return root
}

// envAliases maps flags whose variable is not DATAMESH_<FLAG>.
var envAliases = map[string]string{"server": envPrefix + "URL"}

// applyEnv sets every flag not given on the command line from its
// environment variable, so flags beat env and env beats config files.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}
