package main

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/projection"
)

// cliOut runs the datamesh command with args against n (none if nil) and
// returns stdout and stderr.
func cliOut(t *testing.T, ctx context.Context, n *node.Node, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	if n != nil {
		args = append(args, "--server", n.ClientURL())
	}
	err := run(ctx, args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// wantError checks that err's message contains every part.
func wantError(t *testing.T, err error, args []string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("datamesh %s: got no error, want one containing %q", strings.Join(args, " "), parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("datamesh %s: got %q, want it to contain %q", strings.Join(args, " "), err, p)
		}
	}
}

func TestArgumentErrorsNameTheArguments(t *testing.T) {
	for _, c := range []struct {
		args  []string
		parts []string
	}{
		{[]string{"append", "order", "o-1"}, []string{"append needs AGGREGATE ID TYPE [DATA]: missing TYPE"}},
		{[]string{"append", "order"}, []string{"append needs AGGREGATE ID TYPE [DATA]: missing ID TYPE"}},
		{[]string{"append", "order", "o-1", "T", "{}", "x"}, []string{`unexpected "x"`}},
		{[]string{"read"}, []string{"read needs AGGREGATE [ID]: missing AGGREGATE"}},
		{[]string{"delete", "export"}, []string{"delete needs export|link NAME: missing NAME"}},
		{[]string{"projection", "promote", "orders"}, []string{"projection promote needs NAME VERSION: missing VERSION"}},
		{[]string{"link", "replay"}, []string{"link replay needs NAME [EXPORT_SEQ...]: missing NAME"}},
		{[]string{"status", "1s"}, []string{`status takes no arguments: unexpected "1s"`}},
		{[]string{"query", "orders"}, []string{"query needs PROJECTION (get KEY | list | count | history KEY): missing an operation"}},
		{[]string{"query", "orders", "get"}, []string{"missing KEY after get"}},
		{[]string{"query", "orders", "cont"}, []string{`unknown operation "cont": did you mean count?`}},
		{[]string{"query", "orders", "list", "x"}, []string{`list takes no KEY (unexpected "x")`}},
		// unknown commands and flags suggest the nearest
		{[]string{"stauts"}, []string{`unknown command "stauts"`, "did you mean status?"}},
		{[]string{"projection", "promot", "orders", "2", "--timeout", "1s"}, []string{`unknown command "promot"`, "did you mean promote?"}},
		{[]string{"link", "retyr", "x"}, []string{"did you mean retry?"}},
		{[]string{"status", "--wach"}, []string{"unknown flag: --wach", "did you mean --watch?", "status --help"}},
		{[]string{"apply", "--fil", "x"}, []string{"did you mean --file?"}},
		{[]string{"catalog", "--jsn"}, []string{"did you mean --json?"}},
		{[]string{"status", "--watch", "soon"}, []string{"want an interval such as 1s"}},
		{[]string{"status", "--watch", "0s"}, []string{"interval above 0"}},
		// --promote does not wait by itself: refused before anything is applied
		{[]string{"apply", "-f", "x.yaml", "--promote"}, []string{"--promote needs --wait", "datamesh projection promote"}},
	} {
		_, _, err := cliOut(t, context.Background(), nil, c.args...)
		wantError(t, err, c.args, c.parts...)
	}
}

func TestApplyHelpListsEveryKind(t *testing.T) {
	out, _, err := cliOut(t, context.Background(), nil, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"EventType", "Projection", "Export", "Link"} {
		if !strings.Contains(out, kind) {
			t.Errorf("datamesh --help: apply's line lacks %s:\n%s", kind, out)
		}
	}
}

func TestAppendWithoutDataSaysSo(t *testing.T) {
	n := startNode(t)
	out, errOut, err := cliOut(t, context.Background(), n, "append", "order", "o-1", "Pinged")
	if err != nil || out != "appended order/o-1 Pinged at seq 1\n" {
		t.Fatalf("append printed %q (%v)", out, err)
	}
	if !strings.Contains(errOut, "no DATA given: the event's data is {}") {
		t.Fatalf("append without data printed %q on stderr, want a note that the data is {}", errOut)
	}
	if _, errOut, _ = cliOut(t, context.Background(), n, "append", "order", "o-1", "Pinged", "{}"); errOut != "" {
		t.Fatalf("append with data printed %q on stderr", errOut)
	}
}

// closedAddr is an address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestConnectionErrorsSayWhatToCheck(t *testing.T) {
	url := "nats://" + closedAddr(t)
	file := filepath.Join(t.TempDir(), "backup")
	for _, args := range [][]string{
		{"catalog"}, {"status"}, {"status", "--watch"}, {"read", "order"}, {"append", "order", "o-1", "T", "{}"},
		{"query", "orders", "list"}, {"tail"}, {"projection", "promote", "orders", "2"}, {"projection", "retry", "orders"},
		{"link", "retry", "x"}, {"link", "dead-letters", "x"}, {"delete", "link", "x"}, {"backup", "--out", file},
		{"apply", "-f", "../../deploy/examples/orders/contracts.yaml"},
	} {
		args = append(args, "--server", url)
		_, _, err := cliOut(t, context.Background(), nil, args...)
		wantError(t, err, args, "cannot reach a DataMesh node at "+url, "is `datamesh node` running?", "--server / DATAMESH_URL")
	}

	// The node's HTTP port given for the NATS one: at once by its scheme, or
	// by its silence (an HTTP server waits for a request).
	web := httptest.NewServer(nil)
	defer web.Close()
	args := []string{"catalog", "--server", web.URL}
	_, _, err := cliOut(t, context.Background(), nil, args...)
	wantError(t, err, args, "that is the HTTP port; --server wants the NATS client port")
	args = []string{"catalog", "--server", "nats://" + web.Listener.Addr().String(), "--timeout", "300ms"}
	start := time.Now()
	_, _, err = cliOut(t, context.Background(), nil, args...)
	wantError(t, err, args, "is not a NATS server", "is it the HTTP port?", "--server wants the NATS client port")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the HTTP port took %v to be recognised", d)
	}
}

// frameWriter cancels a context once it has seen n status tables.
type frameWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	cancel func()
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Count(w.buf.String(), "PROJECTION") >= w.n {
		w.cancel()
	}
	return len(p), nil
}

func TestStatusWatchIntervalAndPipe(t *testing.T) {
	n := startNode(t)
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/")
	for _, c := range []struct {
		args   []string
		frames int
	}{
		{[]string{"status", "--watch", "10ms"}, 2},
		{[]string{"status", "--watch=10ms"}, 2},
		{[]string{"status", "--watch"}, 1},
		{[]string{"status", "--watch", "1h"}, 1}, // a frame at once, then the interval
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		w := &frameWriter{n: c.frames, cancel: cancel}
		err := run(ctx, append(c.args, "--server", n.ClientURL()), nil, w, &bytes.Buffer{})
		timedOut := ctx.Err() == context.DeadlineExceeded
		cancel()
		out := w.buf.String()
		if err != nil || timedOut {
			t.Fatalf("datamesh %s: %v (timed out: %v), printed\n%s", strings.Join(c.args, " "), err, timedOut, out)
		}
		if strings.Contains(out, "\033") {
			t.Fatalf("datamesh %s wrote escapes into a pipe: %q", strings.Join(c.args, " "), out)
		}
		if c.frames == 2 && !strings.Contains(out, "\n\nPROJECTION") {
			t.Fatalf("datamesh %s: want the tables separated by a blank line, got\n%s", strings.Join(c.args, " "), out)
		}
	}
}

func TestWaitOutputInPipe(t *testing.T) {
	n := startNode(t)
	mustCLI(t, n, "apply", "-f", "../../deploy/examples/orders/")
	mustCLI(t, n, "append", "order", "o-1", "OrderPlaced", `{"customer":"c-1","total":30}`)
	out, errOut, err := cliOut(t, context.Background(), n, "apply", "-f", "../../deploy/examples/orders/changes/projection-orders-v2.yaml", "--wait")
	if err != nil || out != "projection/orders v2 created\nprojection orders v2 is live at seq 1\n" {
		t.Fatalf("apply --wait printed %q (%v)", out, err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
		if line != "" && !strings.HasPrefix(line, "projection orders v2 ") {
			t.Fatalf("apply --wait printed on stderr %q, want plain lines", errOut)
		}
	}
	if strings.ContainsAny(errOut, "\r\033") {
		t.Fatalf("apply --wait wrote control characters into a pipe: %q", errOut)
	}
	// Already live: nothing on stderr.
	_, errOut, err = cliOut(t, context.Background(), n, "apply", "-f", "../../deploy/examples/orders/changes/projection-orders-v2.yaml", "--wait")
	if err != nil || errOut != "" {
		t.Fatalf("apply --wait of a live version printed %q on stderr (%v)", errOut, err)
	}
}

func TestWaitProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := newWaitProgress(&buf, "orders", 2)
	p.update(projection.Status{State: projection.StateBuilding, Applied: 10, Head: 100, Progress: 0.1})
	p.update(projection.Status{State: projection.StateBuilding, Applied: 50, Head: 100, Progress: 0.5, Rate: 1200})
	p.update(projection.Status{State: "catching_up", Applied: 90, Head: 100, Progress: 0.9, Rate: 1500.4})
	p.finish()
	want := "projection orders v2 building: seq 10 of 100, 10%\n" +
		"projection orders v2 catching_up: seq 90 of 100, 90%, 1500 events/s\n"
	if buf.String() != want {
		t.Fatalf("printed\n%s\nwant\n%s", buf.String(), want)
	}
}
