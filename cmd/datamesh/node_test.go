package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// TestNodePortInUse: a port in use is one error line that names the
// address and the flag, printed before anything claims to be ready.
func TestNodePortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"node", "--name", "busy", "--data", t.TempDir(), "--listen", addr, "--http", "", "--leaf-listen", ""},
		nil, &stdout, &stderr)
	if err == nil {
		t.Fatal("node started on a port in use")
	}
	printError(&stderr, err)
	want := "error: start node: listen " + addr + ": address already in use (is another node running? --listen sets the port)\n"
	if got := stdout.String() + stderr.String(); got != want {
		t.Fatalf("got output\n%s\nwant the one line\n%s", got, want)
	}
	if out := stderr.String(); strings.Contains(out, "is ready") || strings.Contains(out, "node ready") {
		t.Fatal("output claims the node is ready")
	}
}
