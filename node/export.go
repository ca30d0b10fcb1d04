package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
)

// exportRunner runs one export: a worker per peer it is granted to.
type exportRunner struct {
	spec    *meshlink.Export
	cancel  context.CancelFunc
	workers []*exportWorker
	wg      sync.WaitGroup
}

func (r *exportRunner) wait() { r.wg.Wait() }

func (r *exportRunner) status() []ExportStatus {
	out := make([]ExportStatus, 0, len(r.workers))
	for _, w := range r.workers {
		out = append(out, w.status())
	}
	return out
}

// startExport starts a worker per peer of e. m.mu must be held.
func (m *mesh) startExport(e *meshlink.Export) *exportRunner {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &exportRunner{spec: e, cancel: cancel}
	for _, peer := range e.To {
		w := &exportWorker{m: m, spec: e, peer: peer, log: m.log.Named("export").With("export", e.Name, "peer", peer)}
		r.workers = append(r.workers, w)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			w.run(ctx)
		}()
	}
	m.log.Info("export started", "export", e.Name, "to", strings.Join(e.To, ","))
	return r
}

// ExportStatus is one export to one peer, in dm.admin.mesh.
type ExportStatus struct {
	Name      string `json:"name"`
	Peer      string `json:"peer"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// ExportedSeq is the seq (in this node's log) of the last event exported.
	ExportedSeq uint64 `json:"exported_seq"`
	// Head is this node's log head.
	Head uint64 `json:"head"`
	// StreamSeq is the export stream's last seq; ReadSeq is how far the
	// peer has read it (its consumers' delivered seq).
	StreamSeq uint64 `json:"stream_seq"`
	ReadSeq   uint64 `json:"read_seq"`
	LastError string `json:"last_error,omitempty"`
}

// exportWorker copies the events an export selects, redacted, from the
// log into the export's stream in the peer's export account, which is all
// the peer can read. Exactly once: the stream's last message names the
// last event copied, and each copy expects the stream's previous seq.
type exportWorker struct {
	m    *mesh
	spec *meshlink.Export
	peer string
	log  hclog.Logger

	mu        sync.Mutex
	state     string
	exported  uint64
	streamSeq uint64
	lastError string
	stream    jetstream.Stream
}

func (w *exportWorker) run(ctx context.Context) {
	w.setState("starting", nil)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := w.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		w.setState("retrying", err)
		w.log.Warn("export interrupted; retrying", "error", err)
		if !backoff(ctx, attempt) {
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

func (w *exportWorker) runOnce(ctx context.Context) error {
	out, err := w.m.n.connectAccount(exportAccount(w.peer), nats.Name("datamesh-export-"+w.spec.Name))
	if err != nil {
		return err
	}
	defer out.Close()
	// Closing the connections when ctx ends unblocks any request in flight.
	defer context.AfterFunc(ctx, out.Close)()
	ojs, err := jetstream.New(out)
	if err != nil {
		return err
	}
	st, err := ojs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        exportStreamName(w.spec.Name),
		Description: fmt.Sprintf("DataMesh export %s of %s for %s", w.spec.Name, w.m.n.cfg.Name, w.peer),
		Subjects:    []string{exportSubjectPrefix + "." + w.spec.Name + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxMsgSize:  int32(w.m.n.cfg.MaxEventBytes + 64*1024),
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		// Copies are written as atomic batches: one fsync per batch.
		AllowAtomicPublish: true,
	})
	if err != nil {
		return fmt.Errorf("export stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	var resume uint64
	if last > 0 {
		if resume, err = originSeqAt(ctx, out, "$JS.API", exportStreamName(w.spec.Name), last); err != nil {
			return fmt.Errorf("read the last exported event: %w", err)
		}
	}
	w.mu.Lock()
	w.exported, w.streamSeq, w.stream, w.state = resume, last, st, "exporting"
	w.mu.Unlock()

	in, err := w.m.n.Connect(nats.Name("datamesh-export-source"))
	if err != nil {
		return err
	}
	defer in.Close()
	defer context.AfterFunc(ctx, in.Close)()
	ijs, err := jetstream.New(in)
	if err != nil {
		return err
	}
	filters := make([]string, len(w.spec.Aggregates))
	for i, a := range w.spec.Aggregates {
		filters[i] = w.m.n.cfg.SubjectPrefix + "." + a + ".>"
	}
	cons, err := ijs.OrderedConsumer(ctx, w.m.n.cfg.StreamName, jetstream.OrderedConsumerConfig{
		MaxResetAttempts: fetchResets,
		FilterSubjects:   filters,
		DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:      resume + 1,
	})
	if err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	for ctx.Err() == nil {
		msgs, err := fetch(cons, meshBatch)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		if last, err = w.copy(ctx, ojs, out, msgs, last); err != nil {
			return err
		}
	}
	return nil
}

// copy writes the selected messages to the export stream as atomic
// batches (one fsync each in fsync mode, where single publishes would be
// fsynced one by one) and returns the stream's new last seq. The first
// message of each batch expects the stream's last seq, so this worker stays
// the stream's only writer and a failed write leaves no gap.
func (w *exportWorker) copy(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, msgs []jetstream.Msg, last uint64) (uint64, error) {
	var batch []pendingImport
	var exported uint64
	for _, msg := range msgs {
		md, err := msg.Metadata()
		if err != nil {
			return last, err
		}
		exported = md.Sequence.Stream
		ev := eventFromMsg(w.m.n.cfg.SubjectPrefix, msg.Subject(), md.Sequence.Stream, msg.Headers(), msg.Data())
		// An event that went round a cycle back to this node is not exported
		// again: a cycle of links with transforms that feed each other
		// would otherwise never end.
		if !w.spec.Selects(ev.Aggregate, ev.Type) || onPath(msg.Headers().Get(HeaderMeshPath), w.m.n.cfg.Name) {
			continue
		}
		out, err := w.message(msg, ev)
		if err != nil {
			return last, fmt.Errorf("event %d: %w", ev.Seq, err)
		}
		batch = append(batch, pendingImport{msg: out})
	}
	for len(batch) > 0 {
		k := chunkLen(batch)
		batch[0].msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(last, 10))
		seq, err := appendAtomic(ctx, js, nc, batch[:k])
		if err != nil {
			return last, fmt.Errorf("export stream refused a copy: %w", err)
		}
		last = seq
		batch = batch[k:]
	}
	w.mu.Lock()
	w.exported, w.streamSeq = exported, last
	w.mu.Unlock()
	return last, nil
}

// message is the exported copy of a stored event: redacted data, the
// CloudEvents attributes, and where it comes from.
func (w *exportWorker) message(msg jetstream.Msg, ev Event) (*nats.Msg, error) {
	data := []byte(ev.Data)
	if len(w.spec.Redact) > 0 {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		meshlink.Redact(v, w.spec.Redact)
		var err error
		if data, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	out := nats.NewMsg(exportSubjectPrefix + "." + w.spec.Name + "." + ev.Aggregate + "." + ev.AggregateID + "." + ev.Type)
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(strings.ToLower(k), "ce-") || strings.EqualFold(k, HeaderContentType) {
			out.Header[k] = vs
		}
	}
	self := w.m.n.cfg.Name
	path := self
	if p := msg.Headers().Get(HeaderMeshPath); p != "" {
		path = p + "," + self
	}
	out.Header.Set(HeaderOriginNode, self)
	out.Header.Set(HeaderOriginSeq, strconv.FormatUint(ev.Seq, 10))
	out.Header.Set(HeaderOriginID, ev.ID)
	out.Header.Set(HeaderMeshPath, path)
	out.Header.Set(nats.MsgIdHdr, strconv.FormatUint(ev.Seq, 10))
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

func (w *exportWorker) status() ExportStatus {
	w.mu.Lock()
	st := ExportStatus{Name: w.spec.Name, Peer: w.peer, State: w.state, ExportedSeq: w.exported,
		StreamSeq: w.streamSeq, LastError: w.lastError}
	stream := w.stream
	w.mu.Unlock()
	st.Connected = w.m.leafConnected(exportAccount(w.peer))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st.Head, _ = w.m.n.events.head(ctx)
	if stream != nil {
		lister := stream.ListConsumers(ctx)
		for ci := range lister.Info() {
			st.ReadSeq = max(st.ReadSeq, ci.Delivered.Stream)
		}
		if err := lister.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			st.LastError = err.Error()
		}
	}
	return st
}
