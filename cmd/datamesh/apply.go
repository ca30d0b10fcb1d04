package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/datamesh/datamesh/node/resource"

	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

func newApplyCmd() *cobra.Command {
	var (
		cf    clientFlags
		files []string
		force bool
		wait  bool
		prom  bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Apply resources (EventType contracts, Projections, Exports, Links) from YAML files",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("apply needs -f FILE, DIR or -")
			}
			if prom && !wait {
				return fmt.Errorf("--promote needs --wait: a version can be promoted once it is live (--wait --promote waits, then promotes; " +
					"or promote it later with datamesh projection promote NAME VERSION, or set promote: auto in the resource)")
			}
			body, err := readResources(files, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return cf.with(func(c *client.Client) error {
				r, err := c.Apply(body, force)
				if err != nil {
					return err
				}
				if cf.json {
					if err := printJSON(cmd.OutOrStdout(), r); err != nil {
						return err
					}
				}
				for _, res := range r.Results {
					if cf.json {
						break
					}
					name := res.Name
					if res.Aggregate != "" {
						name = res.Aggregate + "." + res.Name
					}
					if res.Version == 0 { // exports and links have no version
						fmt.Fprintf(cmd.OutOrStdout(), "%s/%s %s\n", strings.ToLower(res.Kind), name, res.Status)
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s/%s v%d %s\n", strings.ToLower(res.Kind), name, res.Version, res.Status)
				}
				if wait {
					return waitLive(cmd, c, r.Results, prom)
				}
				return nil
			})
		},
	}
	cf.register(cmd)
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML file, directory of .yaml/.yml files, or - for stdin (repeatable)")
	cmd.Flags().BoolVar(&force, "force", false, "accept contract changes that break compatibility")
	cmd.Flags().BoolVar(&wait, "wait", false, "show progress until every applied projection version is live")
	cmd.Flags().BoolVar(&prom, "promote", false, "with --wait: promote each projection version once it is live (refused without --wait)")
	return cmd
}

// readResources concatenates the YAML documents of files and directories
// (sorted by name) into one multi-document stream. Each file's documents
// follow a resource.SourceMarker line, so that the node's errors name the
// file and its lines.
func readResources(paths []string, stdin io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	add := func(name string, b []byte) {
		buf.WriteString("\n---\n" + resource.SourceMarker + name + "\n")
		buf.Write(b)
	}
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, err
			}
			add("stdin", b)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var files []string
		if st.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				ext := filepath.Ext(e.Name())
				if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			sort.Strings(files)
			if len(files) == 0 {
				return nil, fmt.Errorf("%s: no .yaml, .yml or .json file", p)
			}
		} else {
			files = []string{p}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			add(f, b)
		}
	}
	return buf.Bytes(), nil
}
