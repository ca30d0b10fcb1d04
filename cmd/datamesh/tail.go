package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/schemas"
)

type tailFlags struct {
	cf   clientFlags
	typ  string
	from uint64
	new  bool
}

func newTailCmd() *cobra.Command {
	var f tailFlags
	cmd := &cobra.Command{
		Use:   "tail [AGGREGATE[.ID]]",
		Short: "Follow the log live (all of it, an aggregate, or one instance) until Ctrl-C",
		Long: `tail prints the log's events as they are stored, like kubectl logs -f:
from the start (or --from SEQ), or only new ones (--new), through an
ordered consumer on the log's stream, the way any NATS client can read it.
--json prints one structured CloudEvent per line.`,
		Example: `  datamesh tail                      # the whole log, from the start
  datamesh tail order --new          # new events of every order
  datamesh tail order.o-1 --json     # one order's events as CloudEvents
  datamesh tail --type OrderShipped --from 100`,
		Args: positional("[AGGREGATE[.ID]]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			nc, c, err := f.cf.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			return f.cf.denied.explain(f.run(cmd, nc, c, target), f.cf.creds.user)
		},
	}
	f.cf.register(cmd)
	cmd.Flags().StringVar(&f.typ, "type", "", "only events of this type")
	cmd.Flags().Uint64Var(&f.from, "from", 0, "first seq to print (default: the start of the log)")
	cmd.Flags().BoolVar(&f.new, "new", false, "only events stored from now on")
	return cmd
}

// filter is the subject the consumer reads: <prefix>.<aggregate>.<id>.<type>,
// with * for what the command leaves open.
func (f *tailFlags) filter(prefix, target string) (string, error) {
	agg, id, _ := strings.Cut(target, ".")
	for _, tok := range []string{agg, id, f.typ} {
		if tok != "" && !schemas.ValidToken(tok) {
			return "", fmt.Errorf("%q: aggregate, id and type are single subject tokens", tok)
		}
	}
	tok := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	return eventlog.Subject(prefix, tok(agg), tok(id), tok(f.typ)), nil
}

func (f *tailFlags) run(cmd *cobra.Command, nc *nats.Conn, c *client.Client, target string) error {
	if f.new && f.from > 0 {
		return fmt.Errorf("--new and --from exclude each other")
	}
	cat, err := c.Catalog()
	if err != nil {
		return err
	}
	prefix, _, _ := strings.Cut(cat.SubjectPattern, ".")
	filter, err := f.filter(prefix, target)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case f.new:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case f.from > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.from
	}
	ctx := cmd.Context()
	cons, err := js.OrderedConsumer(ctx, cat.Stream, cfg)
	if err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	out := cmd.OutOrStdout()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		ev := protocol.EventFromRecord(eventlog.NewRecord(prefix, m.Subject(), md.Sequence.Stream, m.Headers(), m.Data()))
		if err := f.print(out, ev); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
		}
	})
	if err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	defer cc.Stop()
	<-ctx.Done()
	return nil
}

func (f *tailFlags) print(w io.Writer, ev protocol.Event) error {
	if f.cf.json {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(w, "%d  %s/%s  %s  %s  %s\n", ev.Seq, ev.Aggregate, ev.AggregateID, ev.Type, ev.Time, ev.Data)
	return err
}
