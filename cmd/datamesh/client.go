package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
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
	creds   credFlags
	denied  denial
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "nats://127.0.0.1:4222", "NATS URL of the node (env DATAMESH_URL)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON instead of a table")
	cmd.Flags().DurationVar(&f.timeout, "timeout", client.DefaultTimeout, "how long to wait for the node")
	f.creds.register(cmd)
}

// connect opens a connection to the node; the caller closes it. Its errors
// say what to check: the node running, the NATS port rather than the HTTP one.
func (f *clientFlags) connect() (*nats.Conn, *client.Client, error) {
	if err := checkServerURL(f.server); err != nil {
		return nil, nil, err
	}
	creds, err := f.creds.options()
	if err != nil {
		return nil, nil, err
	}
	opts := append([]nats.Option{nats.Name("datamesh-cli"), nats.Timeout(f.timeout), nats.ErrorHandler(f.denied.handle)}, creds...)
	// The probe reads the INFO a server sends before any TLS upgrade (the
	// node does not use TLS handshake-first), so it works with TLS too.
	d := &probeDialer{timeout: f.timeout}
	if !strings.Contains(strings.ToLower(f.server), "ws") { // websocket clients speak first
		opts = append(opts, nats.SetCustomDialer(d))
	}
	nc, err := nats.Connect(f.server, opts...)
	if err != nil {
		return nil, nil, connectError(redactURL(f.server), d, err)
	}
	return nc, client.New(nc).WithTimeout(f.timeout), nil
}

const (
	serverHint   = "(--server / DATAMESH_URL sets the address)"
	natsPortHint = "--server wants the NATS client port (nats://127.0.0.1:4222 by default)"
	httpHint     = "that is the HTTP port; " + natsPortHint
)

// checkServerURL refuses an http:// or https:// --server: the node's HTTP
// port serves /healthz and metrics, not the API.
func checkServerURL(server string) error {
	for _, u := range strings.Split(server, ",") {
		u = strings.ToLower(strings.TrimSpace(u))
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			return fmt.Errorf("--server %s: %s", redactURL(server), httpHint)
		}
	}
	return nil
}

// connectError is the error for a failed connection, with what to check.
func connectError(server string, d *probeDialer, err error) error {
	if d.notNATS != "" {
		return fmt.Errorf("%s accepted the connection but is not a NATS server (no greeting): is it the HTTP port? %s",
			d.notNATS, natsPortHint)
	}
	if d.dialErr != nil || errors.Is(err, nats.ErrNoServers) {
		cause := d.dialErr
		var op *net.OpError
		if errors.As(cause, &op) {
			cause = op.Err
		}
		if cause == nil {
			cause = err
		}
		return fmt.Errorf("cannot reach a DataMesh node at %s (%v): is `datamesh node` running? %s", server, cause, serverHint)
	}
	if serr := securityError(server, err); serr != nil {
		return serr
	}
	return fmt.Errorf("connect to %s: %w %s", server, err, serverHint)
}

// greetTimeout is how long a server may take to greet: a NATS server sends
// its INFO as soon as it accepts a connection.
const greetTimeout = 3 * time.Second

// probeDialer dials for the NATS client and keeps what went wrong, which
// nats.ErrNoServers hides: the dial error, or an address that accepted the
// connection without a NATS greeting (an HTTP port waits for a request
// instead, and would hold the client until its timeout).
type probeDialer struct {
	timeout time.Duration
	dialErr error
	notNATS string
}

func (d *probeDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, d.timeout)
	if err != nil {
		d.dialErr = err
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(min(d.timeout, greetTimeout)))
	br := bufio.NewReader(c)
	head, err := br.Peek(4)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil || !strings.EqualFold(string(head), "INFO") {
		c.Close()
		d.notNATS = addr
		return nil, fmt.Errorf("%s: no NATS greeting", addr)
	}
	return &peekedConn{Conn: c, r: br}, nil
}

// peekedConn reads what the dialer peeked at before the rest.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// with runs fn with a client and closes the connection afterwards.
func (f *clientFlags) with(fn func(*client.Client) error) error {
	nc, c, err := f.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	return f.denied.explain(fn(c), f.creds.user)
}

// denial keeps the permissions violation that ended a connection. The
// server refuses a publish its grants do not allow with an asynchronous
// error and no reply, so a request would wait for its timeout and say only
// "timeout": handle closes the connection at once instead, and explain
// turns the request's error into the refusal.
type denial struct {
	mu  sync.Mutex
	err error
}

func (d *denial) handle(nc *nats.Conn, _ *nats.Subscription, err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		fmt.Fprintln(os.Stderr, err) // as nats.go does without a handler
		return
	}
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
	nc.Close() // fails the request in flight now
}

var violation = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]*)"`)

// explain returns err, or the refusal that caused it, naming the identity
// (user; empty for an nkey or a certificate) and the subject.
func (d *denial) explain(err error, user string) error {
	d.mu.Lock()
	denied := d.err
	d.mu.Unlock()
	if err == nil || denied == nil {
		return err
	}
	who := "this client"
	if user != "" {
		who = user
	}
	m := violation.FindStringSubmatch(denied.Error())
	if m == nil {
		return fmt.Errorf("permission denied: %v (not in the grants of %s: docs/security.md)", denied, who)
	}
	verb := "publish to"
	if strings.EqualFold(m[1], "subscription") {
		verb = "subscribe to"
	}
	return fmt.Errorf("permission denied: %s may not %s %s (not in its grants: docs/security.md)", who, verb, m[2])
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}
