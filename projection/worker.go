package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Worker states.
const (
	StateBuilding = "building" // replaying the log, not caught up yet
	StateLive     = "live"     // caught up, applying events as they come
	StateFailed   = "failed"   // stopped by an event or a store error
	StateStopped  = "stopped"  // closed
)

// DefaultBatchSize is how many events a worker commits in one BuntDB transaction at most.
const DefaultBatchSize = 1000

// Config is what a worker needs.
type Config struct {
	Spec *Spec
	// Folder folds events; nil compiles Spec's expressions.
	Folder Folder
	// Path is the BuntDB file.
	Path string
	// Conn is an in-process connection with rights to the stream.
	Conn *nats.Conn
	// OwnConn makes Close close Conn.
	OwnConn       bool
	JS            jetstream.JetStream
	Stream        string
	SubjectPrefix string
	// ChangesPrefix is where change events go: <prefix>.<projection>.<key>.
	ChangesPrefix string
	BatchSize     int
	// OnLive, if set, is called once when the worker first catches up.
	OnLive func()
}

// Status is what `datamesh status` shows of one projection version.
type Status struct {
	Name        string   `json:"name"`
	Version     int      `json:"version"`
	Active      bool     `json:"active"`
	State       string   `json:"state"`
	Applied     uint64   `json:"applied_seq"`
	Head        uint64   `json:"head_seq"`
	LagEvents   uint64   `json:"lag_events"`
	LagSeconds  float64  `json:"lag_seconds"`
	Rate        float64  `json:"events_per_second"`
	Progress    float64  `json:"progress"`              // applied/head, 0..1
	ETASeconds  float64  `json:"eta_seconds,omitempty"` // while building, at the current rate
	Documents   int      `json:"documents"`
	FileBytes   int64    `json:"file_bytes"`
	DeadLetters int      `json:"dead_letters"`
	Failure     *Failure `json:"failure,omitempty"`
	LastError   string   `json:"last_error,omitempty"`
}

// Worker keeps one projection version up to date with the log: it reads
// the stream from its checkpoint and commits documents and checkpoint
// together, batch by batch.
type Worker struct {
	cfg      Config
	log      hclog.Logger
	folder   Folder
	store    *Store
	subjects []string        // one per aggregate and type: what the source holds
	filters  []string        // one per aggregate: what the consumer reads
	types    map[string]bool // the source's types
	// aggregates are the source's aggregates: a worker that reads the
	// whole log drops the others.
	aggregates map[string]bool

	applied atomic.Uint64

	mu        sync.Mutex
	state     string
	pending   uint64 // matching events not yet applied, as of the last batch
	lastTime  time.Time
	failure   *Failure
	lastError string
	dead      int
	rate      float64
	winStart  time.Time
	winCount  int
	advanced  chan struct{} // closed and replaced after every commit

	ctx    context.Context // the run context, for Retry
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewWorker opens the projection's store; Start begins the folding.
func NewWorker(cfg Config, logger hclog.Logger) (*Worker, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	folder := cfg.Folder
	if folder == nil {
		f, err := compileSpec(cfg.Spec)
		if err != nil {
			return nil, err
		}
		folder = f
	}
	st, err := OpenStore(cfg.Path, cfg.Spec)
	if err != nil {
		return nil, err
	}
	cp, err := st.Checkpoint()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	w := &Worker{
		cfg:      cfg,
		log:      logger.Named("projection").With("name", cfg.Spec.Name, "version", cfg.Spec.Version),
		folder:   folder,
		store:    st,
		state:    StateBuilding,
		advanced: make(chan struct{}),
	}
	w.applied.Store(cp)
	if st.Rebuilt {
		w.log.Warn("projection file had a torn write; rebuilding it from the log", "path", cfg.Path)
	}
	w.types, w.aggregates = map[string]bool{}, map[string]bool{}
	for _, t := range cfg.Spec.Source.Types {
		w.types[t] = true
	}
	for _, a := range cfg.Spec.Source.Aggregates {
		w.aggregates[a] = true
		w.filters = append(w.filters, cfg.SubjectPrefix+"."+a+".>")
		for _, t := range cfg.Spec.Source.Types {
			w.subjects = append(w.subjects, cfg.SubjectPrefix+"."+a+".*."+t)
		}
	}
	return w, nil
}

// Spec is the definition the worker runs.
func (w *Worker) Spec() *Spec { return w.cfg.Spec }

// Start runs the worker until Close, or until it fails.
func (w *Worker) Start(ctx context.Context) error {
	w.ctx, w.cancel = context.WithCancel(ctx)
	ctx = w.ctx
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.run(ctx)
	}()
	return nil
}

// Retry restarts a failed worker from its checkpoint.
func (w *Worker) Retry() error {
	w.mu.Lock()
	if w.state != StateFailed {
		st := w.state
		w.mu.Unlock()
		return fmt.Errorf("projection %s v%d is %s, not failed", w.cfg.Spec.Name, w.cfg.Spec.Version, st)
	}
	w.state, w.failure, w.lastError = StateBuilding, nil, ""
	w.mu.Unlock()
	w.wg.Wait()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.run(w.ctx)
	}()
	return nil
}

// Close stops the worker and closes its store. Safe to call twice.
func (w *Worker) Close() error {
	var err error
	w.once.Do(func() {
		if w.cancel != nil {
			w.cancel()
		}
		w.wg.Wait()
		w.mu.Lock()
		if w.state != StateFailed {
			w.state = StateStopped
		}
		w.mu.Unlock()
		err = w.store.Close()
		if w.cfg.OwnConn {
			w.cfg.Conn.Close()
		}
	})
	return err
}

func (w *Worker) fail(f *Failure, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = StateFailed
	w.failure = f
	if err != nil {
		w.lastError = err.Error()
	} else if f != nil {
		w.lastError = fmt.Sprintf("event seq %d (id %s): %s", f.Seq, f.EventID, f.Error)
	}
	w.log.Error("projection failed", "error", w.lastError)
	w.notify()
}

// notify wakes queries waiting for a seq. w.mu must be held.
func (w *Worker) notify() {
	close(w.advanced)
	w.advanced = make(chan struct{})
}

func (w *Worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		if !w.consume(ctx, w.readWholeLog(ctx)) {
			return
		}
	}
}

// readWholeLogShare is how much of the rest of the log must belong to the
// source for a rebuild to read the whole log and drop other aggregates
// itself. nats-server finds the next message of a wildcard filter by
// matching the filter against every subject of the block, once per message
// (profiled: 46% of a rebuild's CPU with 100,000 aggregates), while an
// unfiltered read is a linear walk. A source with fewer events is read
// through the filter, which lets the server skip whole blocks.
const readWholeLogShare = 4 // one event in four

// readWholeLogMin is the shortest replay that is worth the probe.
const readWholeLogMin = 10_000

// readWholeLog reports whether the worker should replay the whole log
// rather than let the server filter it: true when at least one event in
// readWholeLogShare of the rest of the log belongs to the source. It asks
// with a short-lived consumer, whose pending count the server computes
// from its subject index.
func (w *Worker) readWholeLog(ctx context.Context) bool {
	from := w.applied.Load() + 1
	st, err := w.cfg.JS.Stream(ctx, w.cfg.Stream)
	if err != nil {
		return false
	}
	state := st.CachedInfo().State
	if state.LastSeq < from || state.LastSeq-from+1 < readWholeLogMin {
		return false
	}
	rest := state.LastSeq - max(from, state.FirstSeq) + 1
	probe, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubjects:    w.filters,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return false
	}
	matching := probe.CachedInfo().NumPending
	_ = st.DeleteConsumer(ctx, probe.CachedInfo().Name)
	whole := matching*readWholeLogShare >= rest
	w.log.Debug("replay", "from", from, "log_events", rest, "source_events", matching, "read_whole_log", whole)
	return whole
}

// consume reads the log from the checkpoint and applies it batch by batch
// until ctx ends or the worker fails (false). Reading the whole log, it
// returns true once caught up, for the caller to follow the log's tail
// through the filter instead.
func (w *Worker) consume(ctx context.Context, wholeLog bool) bool {
	from := w.applied.Load() + 1
	// The consumer reads whole aggregates and the worker drops other types:
	// JetStream matches one wildcard per aggregate much faster than one
	// filter per aggregate and type (profiled: the multi-filter intersection
	// took 42% of a rebuild's CPU with 10,000 subjects).
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: w.filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	}
	if wholeLog {
		cfg.FilterSubjects = nil
	}
	cons, err := w.cfg.JS.OrderedConsumer(ctx, w.cfg.Stream, cfg)
	if err != nil {
		if ctx.Err() == nil {
			w.fail(nil, fmt.Errorf("create consumer: %w", err))
		}
		return false
	}
	msgs := make(chan jetstream.Msg, 2*w.cfg.BatchSize)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(w.cfg.BatchSize))
	if err != nil {
		w.fail(nil, fmt.Errorf("consume: %w", err))
		return false
	}
	defer cc.Stop()
	w.markLiveIfCaughtUp(ctx)

	batch := make([]jetstream.Msg, 0, w.cfg.BatchSize)
	for {
		if wholeLog && w.isLive() {
			return true
		}
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return false
		case m := <-msgs:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < w.cfg.BatchSize {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		// Once ctx is done the consume callback drops messages, so a batch
		// gathered since then may have gaps: never apply it.
		if ctx.Err() != nil {
			return false
		}
		if !w.applyBatch(batch) {
			return false
		}
	}
}

func (w *Worker) isLive() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state == StateLive
}

// markLiveIfCaughtUp turns a worker with nothing to replay live at once.
func (w *Worker) markLiveIfCaughtUp(ctx context.Context) {
	relevant, err := w.relevantBetween(ctx, w.applied.Load()+1, 0)
	if err != nil || relevant {
		return
	}
	w.mu.Lock()
	live := w.goLive()
	w.notify()
	w.mu.Unlock()
	w.wentLive(live)
}

// goLive turns a building worker live; it reports whether it did. w.mu must be held.
func (w *Worker) goLive() bool {
	if w.state != StateBuilding {
		return false
	}
	w.state = StateLive
	w.log.Info("projection live", "applied_seq", w.applied.Load())
	return true
}

// wentLive calls the OnLive hook, outside the worker's lock.
func (w *Worker) wentLive(live bool) {
	if live && w.cfg.OnLive != nil {
		w.cfg.OnLive()
	}
}

// applyBatch folds and commits one batch; false stops the worker.
func (w *Worker) applyBatch(batch []jetstream.Msg) bool {
	applied := w.applied.Load()
	events := make([]*Event, 0, len(batch))
	var pending, lastSeq uint64
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			w.fail(nil, fmt.Errorf("message metadata: %w", err))
			return false
		}
		pending, lastSeq = md.NumPending, md.Sequence.Stream
		if md.Sequence.Stream <= applied {
			continue // redelivered after a consumer reset
		}
		ev := toEvent(w.cfg.SubjectPrefix, m.Subject(), md.Sequence.Stream, m.Headers(), m.Data())
		if w.types[ev.Type] && w.aggregates[ev.Aggregate] {
			events = append(events, ev)
		}
	}
	if len(events) == 0 {
		if lastSeq > applied {
			if err := w.store.SetCheckpoint(lastSeq); err != nil {
				w.fail(nil, fmt.Errorf("store: %w", err))
				return false
			}
			w.applied.Store(lastSeq)
		}
		w.mu.Lock()
		w.pending = pending
		live := pending == 0 && w.goLive()
		w.notify()
		w.mu.Unlock()
		w.wentLive(live)
		return true
	}
	res, err := w.store.Apply(events, w.folder, w.cfg.Spec)
	if err != nil {
		w.fail(nil, fmt.Errorf("store: %w", err))
		return false
	}
	last := events[len(events)-1]
	n := len(events)
	if res.Failure != nil {
		n = 0
		for _, ev := range events {
			if ev.Seq >= res.Failure.Seq {
				break
			}
			last, n = ev, n+1
		}
	}
	if n > 0 {
		w.applied.Store(last.Seq)
	}
	if res.Failure == nil && lastSeq > last.Seq {
		// The batch ended with events of other types: move past them too.
		if err := w.store.SetCheckpoint(lastSeq); err != nil {
			w.fail(nil, fmt.Errorf("store: %w", err))
			return false
		}
		w.applied.Store(lastSeq)
	}
	w.publishChanges(res.Changes)

	w.mu.Lock()
	now := time.Now()
	w.pending = pending
	w.dead += len(res.Dead)
	if n > 0 {
		w.lastTime = parseTime(last.Time)
	}
	if w.winStart.IsZero() {
		w.winStart = now
	}
	w.winCount += n
	if el := now.Sub(w.winStart); el >= time.Second {
		w.rate = float64(w.winCount) / el.Seconds()
		w.winStart, w.winCount = now, 0
	}
	live := pending == 0 && w.goLive()
	w.notify()
	w.mu.Unlock()
	w.wentLive(live)

	if res.Failure != nil {
		w.fail(res.Failure, nil)
		return false
	}
	return true
}

func (w *Worker) publishChanges(changes []Change) {
	if !w.cfg.Spec.Changes || len(changes) == 0 {
		return
	}
	prefix := w.cfg.ChangesPrefix + "." + w.cfg.Spec.Name + "."
	for _, c := range changes {
		b, _ := json.Marshal(c)
		if err := w.cfg.Conn.Publish(prefix+SubjectToken(c.Key), b); err != nil {
			w.log.Warn("publish change", "key", c.Key, "error", err)
		}
	}
}

// SubjectToken makes a document key usable as one subject token by
// percent-encoding '.', '*', '>', '%' and white space.
func SubjectToken(key string) string {
	if !strings.ContainsAny(key, ".*>% \t\r\n") && key != "" {
		return key
	}
	var sb strings.Builder
	for _, r := range key {
		switch r {
		case '.', '*', '>', '%', ' ', '\t', '\r', '\n':
			fmt.Fprintf(&sb, "%%%02X", r)
		default:
			sb.WriteRune(r)
		}
	}
	if sb.Len() == 0 {
		return "%00"
	}
	return sb.String()
}

// Applied is the seq of the last event applied.
func (w *Worker) Applied() uint64 { return w.applied.Load() }

// Status reports the worker's state and figures; head is the stream's last seq.
func (w *Worker) Status(head uint64) Status {
	st := w.store.Stats()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Status{
		Name: w.cfg.Spec.Name, Version: w.cfg.Spec.Version, State: w.state,
		Applied: w.applied.Load(), Head: head, LagEvents: w.pending,
		Documents: st.Documents, FileBytes: st.FileBytes, DeadLetters: w.dead,
		Failure: w.failure, LastError: w.lastError, Rate: w.rate,
	}
	if w.state == StateLive && w.pending == 0 {
		s.LagEvents = 0
	} else if !w.lastTime.IsZero() {
		s.LagSeconds = time.Since(w.lastTime).Seconds()
	}
	if time.Since(w.winStart) > 5*time.Second {
		s.Rate = 0
	}
	s.Progress = 1
	if head > 0 && s.State != StateLive {
		s.Progress = min(1, float64(s.Applied)/float64(head))
	}
	if s.State == StateBuilding && s.Rate > 0 {
		s.ETASeconds = float64(s.LagEvents) / s.Rate
	}
	return s
}

// ErrNotUpToDate is returned when a query's min_seq was not reached in time.
var ErrNotUpToDate = errors.New("not up to date")

// Query answers q from the store once the worker has applied q.MinSeq.
func (w *Worker) Query(ctx context.Context, q *Query) (*Result, error) {
	if q.MinSeq > 0 {
		if err := w.waitFor(ctx, q.MinSeq); err != nil {
			return nil, err
		}
	}
	return w.store.Run(q)
}

// waitFor returns once every event of the projection's source with seq <=
// min is applied: either the checkpoint reached min, or no matching event
// lies between the checkpoint and min.
func (w *Worker) waitFor(ctx context.Context, min uint64) error {
	for {
		w.mu.Lock()
		ch, state, lastErr := w.advanced, w.state, w.lastError
		w.mu.Unlock()
		applied := w.applied.Load()
		if applied >= min {
			return nil
		}
		relevant, err := w.relevantBetween(ctx, applied+1, min)
		if err != nil {
			return err
		}
		if !relevant {
			return nil
		}
		if state == StateFailed {
			return fmt.Errorf("%w: the projection failed at applied seq %d: %s", ErrNotUpToDate, applied, lastErr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: applied seq is %d, waiting for %d", ErrNotUpToDate, w.applied.Load(), min)
		}
	}
}

// relevantBetween reports whether an event of the source has a seq in
// [from, upTo] (upTo 0: no bound), using direct gets.
func (w *Worker) relevantBetween(ctx context.Context, from, upTo uint64) (bool, error) {
	for _, subj := range w.subjects {
		// max_bytes is set: without it nats-server reads its options
		// unlocked, which races with a reload (mesh links reload them).
		body, _ := json.Marshal(map[string]any{"seq": from, "next_by_subj": subj, "max_bytes": 1 << 20})
		resp, err := w.cfg.Conn.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+w.cfg.Stream, body)
		if err != nil {
			return false, fmt.Errorf("%w: %v", ErrNotUpToDate, err)
		}
		if st := resp.Header.Get("Status"); st == "404" {
			continue
		} else if st != "" {
			return false, fmt.Errorf("direct get: %s %s", st, resp.Header.Get("Description"))
		}
		seq, _ := strconv.ParseUint(resp.Header.Get(nats.JSSequence), 10, 64)
		if upTo == 0 || seq <= upTo {
			return true, nil
		}
	}
	return false, nil
}

// toEvent reads a stored message: <prefix>.<aggregate>.<id>.<type>.
func toEvent(prefix, subject string, seq uint64, h nats.Header, data []byte) *Event {
	ev := &Event{Seq: seq, Data: data, EventID: h.Get("ce-id"), Source: h.Get("ce-source"), Time: h.Get("ce-time"), Type: h.Get("ce-type")}
	if parts := strings.Split(strings.TrimPrefix(subject, prefix+"."), "."); len(parts) == 3 {
		ev.Aggregate, ev.ID = parts[0], parts[1]
		if ev.Type == "" {
			ev.Type = parts[2]
		}
	}
	return ev
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
