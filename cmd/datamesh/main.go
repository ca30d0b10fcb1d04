// Command datamesh runs a DataMesh node and talks to one.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/datamesh/datamesh/node/protocol"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		printError(os.Stderr, err)
		os.Exit(1)
	}
}

// printError prints err on one line, then the details an API error carries
// (every schema violation, every incompatibility reason).
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "error:", err)
	var e *protocol.Error
	if !errors.As(err, &e) {
		return
	}
	for _, v := range e.Violations {
		path := v.Path
		if path == "" {
			path = "/"
		}
		fmt.Fprintf(w, "  %s: %s\n", path, v.Message)
	}
	if len(e.Reasons) > 1 {
		for _, r := range e.Reasons {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
}

// run executes the CLI with args; it is main without the process around it,
// so tests can call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
