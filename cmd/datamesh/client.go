package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
)

// clientFlags are shared by every command that talks to a running node.
type clientFlags struct {
	server  string
	json    bool
	timeout time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "nats://127.0.0.1:4222", "NATS URL of the node (env DATAMESH_URL)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON instead of a table")
	cmd.Flags().DurationVar(&f.timeout, "timeout", client.DefaultTimeout, "how long to wait for the node")
}

// connect opens a connection to the node; the caller closes it.
func (f *clientFlags) connect() (*nats.Conn, *client.Client, error) {
	nc, err := nats.Connect(f.server, nats.Name("datamesh-cli"), nats.Timeout(f.timeout))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", f.server, err)
	}
	return nc, client.New(nc).WithTimeout(f.timeout), nil
}

// with runs fn with a client and closes the connection afterwards.
func (f *clientFlags) with(fn func(*client.Client) error) error {
	nc, c, err := f.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	return fn(c)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}
