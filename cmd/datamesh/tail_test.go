package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
	"github.com/datamesh/datamesh/node/protocol"
)

// syncBuffer is an output the command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n")
}

// tail runs datamesh tail with args until the test ends; it returns the
// output and a func that stops it and returns its error.
func tail(t *testing.T, url string, args ...string) (*syncBuffer, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append(append([]string{"tail"}, args...), "--server", url), strings.NewReader(""), out, &bytes.Buffer{})
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("tail did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("tail %v: %v", args, err)
		}
	})
	return out, stop
}

func TestTailFollowsTheLog(t *testing.T) {
	n := startNode(t)
	for i := 1; i <= 2; i++ {
		mustCLI(t, n, "append", "order", fmt.Sprintf("o-%d", i), "OrderPlaced", `{"total":1}`)
	}
	all, stopAll := tail(t, n.ClientURL(), "--json")
	shipped, _ := tail(t, n.ClientURL(), "order", "--type", "OrderShipped")
	one, _ := tail(t, n.ClientURL(), "order.o-2", "--new")
	// --new starts at the head: wait until every tail's consumer exists
	// (an event appended before would not show in --new).
	waitConsumers(t, n.ClientURL(), 3)
	mustCLI(t, n, "append", "order", "o-1", "OrderShipped", `{"carrier":"ups"}`)
	nodetest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got := shipped.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "3  order/o-1  OrderShipped  ") {
			return fmt.Errorf("tail --type OrderShipped printed %q", got)
		}
		return nil
	})
	mustCLI(t, n, "append", "order", "o-2", "OrderShipped", `{"carrier":"dhl"}`)
	nodetest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got := one.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "4  order/o-2  OrderShipped  ") {
			return fmt.Errorf("tail order.o-2 --new printed %q", got)
		}
		if got := all.lines(); len(got) != 4 {
			return fmt.Errorf("tail --json printed %d lines, want 4", len(got))
		}
		return nil
	})
	if err := stopAll(); err != nil {
		t.Fatalf("tail ended with %v", err)
	}
	for i, line := range all.lines() {
		var ev protocol.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Seq != uint64(i+1) || ev.Aggregate != "order" || ev.SpecVersion != "1.0" {
			t.Fatalf("line %d: %q (%v), want the CloudEvent at seq %d", i, line, err, i+1)
		}
	}
}

// waitConsumers waits until the log's stream has want consumers.
func waitConsumers(t *testing.T, url string, want int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	nodetest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		st, err := js.Stream(context.Background(), node.DefaultStreamName)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Consumers < want {
			return fmt.Errorf("%d consumers on the log, want %d", info.State.Consumers, want)
		}
		return nil
	})
}
