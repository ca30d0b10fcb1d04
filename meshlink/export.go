package meshlink

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

// exportRunner runs one export: a worker per peer it is granted to.
type exportRunner struct {
	task
	spec    *Export
	workers []*exportWorker
}

// newExport returns the runner of e, a worker per peer, not running yet.
func (m *Mesh) newExport(e *Export) *exportRunner {
	r := &exportRunner{spec: e}
	for _, peer := range e.To {
		r.workers = append(r.workers, &exportWorker{m: m, spec: e, peer: peer, state: "standby",
			log: m.log.Named("export").With("export", e.Name, "peer", peer)})
	}
	return r
}

// runExport starts r's workers. m.mu must be held.
func (m *Mesh) runExport(r *exportRunner) {
	runs := make([]func(context.Context), 0, len(r.workers))
	for _, w := range r.workers {
		runs = append(runs, w.run)
	}
	r.task.start(m.ctx, runs...)
	m.log.Info("export started", "export", r.spec.Name, "to", strings.Join(r.spec.To, ","))
}

// exportWorker copies the events an export selects, redacted, from the
// log into the export's stream in the peer's export account, which is all
// the peer can read. Exactly once: the stream's last message names the
// last event copied, and each copy expects the stream's previous seq.
type exportWorker struct {
	m    *Mesh
	spec *Export
	peer string
	log  hclog.Logger

	mu        sync.Mutex
	state     string
	exported  uint64
	streamSeq uint64
	lastError string
	attempts  int // failed attempts in a row
	stream    jetstream.Stream
}

func (w *exportWorker) run(ctx context.Context) {
	w.setState("starting", nil)
	for ctx.Err() == nil {
		err := w.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.state, w.lastError = "retrying", err.Error()
		w.attempts++
		n := w.attempts
		w.mu.Unlock()
		w.log.Warn("export interrupted; retrying", "attempt", n, "retry_in", eventlog.RetryDelay(n), "error", err)
		if !backoff(ctx, n) {
			return
		}
	}
}

func (w *exportWorker) setState(s string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = s
	if err != nil {
		w.lastError = err.Error()
	}
}

// runOnce copies until ctx ends or something fails.
func (w *exportWorker) runOnce(ctx context.Context) error {
	out, err := w.m.deps.Dialer.ConnectExport(w.peer, nats.Name("datamesh-export-"+w.spec.Name))
	if err != nil {
		return fmt.Errorf("connect to the export account of %s: %w", w.peer, err)
	}
	defer out.Close()
	// Closing the connections when ctx ends unblocks any request in flight.
	defer context.AfterFunc(ctx, out.Close)()
	ojs, err := jetstream.New(out)
	if err != nil {
		return err
	}
	last, resume, err := w.openStream(ctx, ojs, out)
	if err != nil {
		return err
	}
	var files *eventlog.StreamFiles // nil in os mode
	if w.m.cfg.ExportDir != nil {
		dir := w.m.cfg.ExportDir(w.peer, exportStream(w.spec.Name))
		if err := eventlog.SyncTree(dir); err != nil {
			return fmt.Errorf("sync the export stream: %w", err)
		}
		if w.m.cfg.Fsync {
			files = eventlog.NewStreamFiles(dir)
			defer files.Close()
		}
	}
	in, err := w.m.deps.Dialer.Connect(nats.Name("datamesh-export-source"))
	if err != nil {
		return fmt.Errorf("connect to this node: %w", err)
	}
	defer in.Close()
	defer context.AfterFunc(ctx, in.Close)()
	cons, err := w.readLog(ctx, in, resume)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		msgs, err := fetch(cons, meshBatch)
		if err != nil {
			return fmt.Errorf("read the log: %w", err)
		}
		if len(msgs) == 0 {
			continue
		}
		if last, err = w.copy(ctx, ojs, files, msgs, last); err != nil {
			return err
		}
	}
	return nil
}

// openStream creates or updates the export stream and returns its last
// seq and the log seq to resume after: the Dm-Origin-Seq of its last
// message.
func (w *exportWorker) openStream(ctx context.Context, js jetstream.JetStream, nc *nats.Conn) (last, resume uint64, err error) {
	st, err := eventlog.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:        exportStream(w.spec.Name),
		Description: fmt.Sprintf("DataMesh export %s of %s for %s", w.spec.Name, w.m.cfg.Node, w.peer),
		Subjects:    []string{exportSubjects(w.spec.Name) + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxMsgSize:  eventlog.MaxMsgSize(w.m.cfg.MaxEventBytes),
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		// Kept on: streams created by earlier versions have it, and the
		// config must not change under them.
		AllowAtomicPublish: true,
		Replicas:           max(1, w.m.cfg.Replicas),
	})
	if err != nil {
		return 0, 0, fmt.Errorf("export stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("export stream: %w", err)
	}
	last = info.State.LastSeq
	if last > 0 {
		if resume, err = eventlog.OriginSeqAt(ctx, nc, eventlog.API, exportStream(w.spec.Name), last); err != nil {
			return 0, 0, fmt.Errorf("read the last exported event: %w", err)
		}
	}
	w.mu.Lock()
	w.exported, w.streamSeq, w.stream, w.state, w.attempts = resume, last, st, "exporting", 0
	w.mu.Unlock()
	return last, resume, nil
}

// readLog opens an ordered consumer on the export's aggregates in the log,
// after seq resume.
func (w *exportWorker) readLog(ctx context.Context, nc *nats.Conn, resume uint64) (jetstream.Consumer, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	filters := make([]string, len(w.spec.Aggregates))
	for i, a := range w.spec.Aggregates {
		filters[i] = eventlog.AggregateFilter(w.m.deps.Log.Prefix(), a, "")
	}
	cons, err := js.OrderedConsumer(ctx, w.m.deps.Log.Stream(), jetstream.OrderedConsumerConfig{
		MaxResetAttempts: fetchResets,
		FilterSubjects:   filters,
		DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:      resume + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("read the log: %w", err)
	}
	return cons, nil
}

// copy writes the selected messages to the export stream, pipelined, each
// expecting the seq its predecessor takes (eventlog.PublishChain): this
// worker stays the stream's only writer and a failed write leaves no gap.
// In fsync mode it fsyncs the stream's files (files) before it moves on.
// It returns the stream's new last seq.
func (w *exportWorker) copy(ctx context.Context, js jetstream.JetStream, files *eventlog.StreamFiles, msgs []jetstream.Msg, last uint64) (uint64, error) {
	var batch []*nats.Msg
	var exported uint64
	for _, msg := range msgs {
		md, err := msg.Metadata()
		if err != nil {
			return last, err
		}
		exported = md.Sequence.Stream
		aggregate, id, typ, ok := eventlog.ParseSubject(w.m.deps.Log.Prefix(), msg.Subject())
		// An event that went round a cycle back to this node is not exported
		// again: a cycle of links with transforms that feed each other
		// would otherwise never end.
		if !ok || !w.spec.Selects(aggregate, typ) || onPath(msg.Headers().Get(eventlog.HeaderMeshPath), w.m.cfg.Node) {
			continue
		}
		out, err := w.message(msg, aggregate, id, typ, exported)
		if err != nil {
			return last, fmt.Errorf("event %d: %w", exported, err)
		}
		batch = append(batch, out)
	}
	if len(batch) > 0 {
		seq, err := eventlog.PublishChain(ctx, js, batch, last)
		if err != nil {
			// What was stored stays: the retry resumes after it.
			return seq, fmt.Errorf("export stream refused a copy: %w", err)
		}
		if files != nil {
			if err := files.Sync(); err != nil {
				return last, fmt.Errorf("fsync the export stream: %w", err)
			}
		}
		last = seq
	}
	w.mu.Lock()
	w.exported, w.streamSeq = exported, last
	w.mu.Unlock()
	return last, nil
}

// message is the exported copy of the stored event at seq: redacted data,
// the CloudEvents attributes, and where it comes from.
func (w *exportWorker) message(msg jetstream.Msg, aggregate, id, typ string, seq uint64) (*nats.Msg, error) {
	data := msg.Data()
	if len(w.spec.Redact) > 0 {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		Redact(v, w.spec.Redact)
		var err error
		if data, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	h := msg.Headers()
	out := nats.NewMsg(eventlog.Subject(exportSubjects(w.spec.Name), aggregate, id, typ))
	for k, vs := range h {
		if strings.HasPrefix(strings.ToLower(k), "ce-") || strings.EqualFold(k, eventlog.HeaderContentType) {
			out.Header[k] = vs
		}
	}
	self := w.m.cfg.Node
	path := self
	if p := h.Get(eventlog.HeaderMeshPath); p != "" {
		path = p + "," + self
	}
	out.Header.Set(eventlog.HeaderOriginNode, self)
	out.Header.Set(eventlog.HeaderOriginSeq, strconv.FormatUint(seq, 10))
	out.Header.Set(eventlog.HeaderOriginID, h.Get(eventlog.HeaderID))
	out.Header.Set(eventlog.HeaderMeshPath, path)
	out.Header.Set(nats.MsgIdHdr, strconv.FormatUint(seq, 10))
	out.Data = data
	return out, nil
}

// onPath reports whether node is in a comma-separated mesh path.
func onPath(path, node string) bool {
	for _, p := range strings.Split(path, ",") {
		if p == node {
			return true
		}
	}
	return false
}
