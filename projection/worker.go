package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/node/eventlog"
)

// Worker states.
const (
	StateBuilding = "building" // replaying the log, not caught up yet
	StateLive     = "live"     // caught up, applying events as they come
	StateFailed   = "failed"   // stopped by an event (on_error: stop)
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
	OwnConn bool
	// Connect, if set, opens a new connection (owned by the worker) when
	// Conn was closed under a worker that retries.
	Connect       func() (*nats.Conn, error)
	JS            jetstream.JetStream
	Stream        string
	SubjectPrefix string
	// ChangesPrefix is where change events go: <prefix>.<projection>.<key>.
	ChangesPrefix string
	BatchSize     int
	// OnLive, if set, is called once when the worker first catches up. It
	// runs on the worker's goroutine: it must not wait for the worker.
	OnLive func()
	// LeaderReads: the stream is replicated (a cluster); a query's min_seq
	// is checked against its leader (see Worker.seek).
	LeaderReads bool
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
	count   sourceCount // the source's events, for Status
	nc      atomic.Pointer[logConn]

	mu        sync.Mutex
	state     string
	pending   uint64 // matching events not yet applied, as of the last batch
	lastTime  time.Time
	failure   *Failure
	lastError string
	attempts  int // failed attempts in a row while retrying
	dead      int
	rate      eventlog.Rate
	advanced  chan struct{} // closed and replaced after every commit, and at Close
	kick      chan struct{} // Retry cuts a retrying worker's backoff short
	started   bool
	closed    bool            // set as Close begins: no run starts after it
	ctx       context.Context // the run context, for Retry
	cancel    context.CancelFunc

	wg        sync.WaitGroup // the run goroutine
	closeOnce sync.Once
	closeErr  error
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
		kick:     make(chan struct{}, 1),
	}
	w.applied.Store(cp)
	st.useLog(w, folder)
	w.nc.Store(&logConn{nc: cfg.Conn, js: cfg.JS, own: cfg.OwnConn})
	if st.Rebuilt {
		w.log.Warn("projection file had a torn write or history in the 0.1.0 layout that misses versions; rebuilding it from the log", "path", cfg.Path)
	}
	w.types, w.aggregates = map[string]bool{}, map[string]bool{}
	for _, t := range cfg.Spec.Source.Types {
		w.types[t] = true
	}
	for _, a := range cfg.Spec.Source.Aggregates {
		w.aggregates[a] = true
		w.filters = append(w.filters, eventlog.AggregateFilter(cfg.SubjectPrefix, a, ""))
		for _, t := range cfg.Spec.Source.Types {
			w.subjects = append(w.subjects, eventlog.Subject(cfg.SubjectPrefix, a, "*", t))
		}
	}
	return w, nil
}

// Spec is the definition the worker runs.
func (w *Worker) Spec() *Spec { return w.cfg.Spec }

// Applied is the seq of the last event applied.
func (w *Worker) Applied() uint64 { return w.applied.Load() }

// Start runs the worker until Close, or until it fails. The run ends with
// ctx too. It fails if the worker was started or closed before.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("projection %s v%d: start: the worker is closed", w.cfg.Spec.Name, w.cfg.Spec.Version)
	}
	if w.started {
		return fmt.Errorf("projection %s v%d: start: the worker is already started", w.cfg.Spec.Name, w.cfg.Spec.Version)
	}
	w.started = true
	w.ctx, w.cancel = context.WithCancel(ctx)
	w.goRun()
	return nil
}

// goRun starts the run goroutine. w.mu must be held and w.closed false, so
// that Close, which sets closed under w.mu before it waits, waits for it.
func (w *Worker) goRun() {
	ctx := w.ctx
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.run(ctx)
	}()
}

// Retry restarts a failed worker from its checkpoint, and makes a
// retrying one try again at once. A worker that is neither refuses with an
// error wrapping ErrConflict.
func (w *Worker) Retry() error {
	w.mu.Lock()
	if w.state == StateRetrying && !w.closed {
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
		return nil
	}
	if w.state != StateFailed || !w.started || w.closed {
		st := w.state
		if w.closed {
			st = StateStopped
		}
		w.mu.Unlock()
		return conflict("projection %s v%d is %s, not failed", w.cfg.Spec.Name, w.cfg.Spec.Version, st)
	}
	w.state, w.failure, w.lastError, w.attempts = StateBuilding, nil, "", 0
	w.mu.Unlock()
	w.wg.Wait() // the failed run is returning
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return conflict("projection %s v%d is %s, not failed", w.cfg.Spec.Name, w.cfg.Spec.Version, StateStopped)
	}
	w.goRun()
	return nil
}

// Close stops the worker, wakes the queries waiting for a seq (they fail
// with ErrNotUpToDate) and closes its store. Safe to call twice: every
// call returns the first call's error.
func (w *Worker) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		cancel := w.cancel
		w.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		w.wg.Wait()
		w.mu.Lock()
		if w.state != StateFailed {
			w.state = StateStopped
		}
		w.notify()
		w.mu.Unlock()
		w.closeErr = w.store.Close()
		if c := w.conn(); c.own {
			c.nc.Close()
		}
	})
	return w.closeErr
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

// Query answers q from the store once the worker has applied q.MinSeq.
// A query the store refuses wraps ErrNotFound or ErrInvalid; one whose
// min_seq is not reached in time, or on a stopped worker, ErrNotUpToDate.
func (w *Worker) Query(ctx context.Context, q *Query) (*Result, error) {
	if q.MinSeq > 0 {
		if err := w.waitFor(ctx, q.MinSeq); err != nil {
			return nil, err
		}
	}
	return w.store.Run(ctx, q)
}

// waitFor returns once every event of the projection's source with seq <=
// want is applied: either the checkpoint reached want, or no matching
// event lies between the checkpoint and want and the log's head reached
// want. A want beyond the head waits for the log to get there.
func (w *Worker) waitFor(ctx context.Context, want uint64) error {
	poll := headPollMin
	for {
		w.mu.Lock()
		ch, state, lastErr, closed := w.advanced, w.state, w.lastError, w.closed
		w.mu.Unlock()
		applied := w.applied.Load()
		if applied >= want {
			return nil
		}
		if closed {
			return fmt.Errorf("%w: the projection is stopped at applied seq %d", ErrNotUpToDate, applied)
		}
		relevant, reached, err := w.awaiting(ctx, applied+1, want)
		if err != nil && !(w.cfg.LeaderReads && isStatus(err)) {
			return err
		}
		// On a cluster a status is the stream's leader not answering (an
		// election, this server cut off): wait, as for a head not reached.
		var timer *time.Timer
		tick := (<-chan time.Time)(nil)
		switch {
		case !relevant && reached:
			return nil
		case !relevant:
			// Events of other aggregates move the head without a commit
			// here: look at the head again after a while.
			timer = time.NewTimer(poll)
			tick, poll = timer.C, min(2*poll, headPollMax)
		case state == StateFailed:
			return fmt.Errorf("%w: the projection failed at applied seq %d: %s", ErrNotUpToDate, applied, lastErr)
		}
		select {
		case <-ch:
		case <-tick:
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w: applied seq is %d, waiting for %d; the log's leader did not tell how far it is: %v", ErrNotUpToDate, w.applied.Load(), want, err)
			}
			return fmt.Errorf("%w: applied seq is %d, waiting for %d", ErrNotUpToDate, w.applied.Load(), want)
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// How often a query waiting for a seq beyond the log's head looks at the
// head again: headPollMin, doubling up to headPollMax.
const (
	headPollMin = 5 * time.Millisecond
	headPollMax = 200 * time.Millisecond
)

// awaiting reports whether an event of the source has a seq in [from,
// want] (relevant), and if none does, whether the log holds want already
// (reached): then the projection has everything up to want. A relevant
// event found is proof by itself; "none" is only once the same reader has
// seen the log reach want, so the head is read first and the source again
// after it (an event stored between two reads would otherwise be missed).
func (w *Worker) awaiting(ctx context.Context, from, want uint64) (relevant, reached bool, err error) {
	if relevant, err = w.relevantBetween(ctx, from, want); err != nil || relevant {
		return relevant, false, err
	}
	if reached, err = w.headReached(ctx, want); err != nil || !reached {
		return false, false, err
	}
	relevant, err = w.relevantBetween(ctx, from, want)
	return relevant, true, err
}

// seek returns the seq of the first message at or after req.Seq on
// req.NextBySubject. On a cluster it asks the stream's leader: a direct
// get may be answered by a replica that lags, whose "none up to want"
// would answer a min_seq query too early.
func (w *Worker) seek(ctx context.Context, req eventlog.GetRequest) (uint64, error) {
	if w.cfg.LeaderReads {
		return eventlog.LeaderGet(ctx, w.conn().nc, eventlog.API, w.cfg.Stream, req)
	}
	var seq uint64
	_, err := eventlog.DirectGet(ctx, w.conn().nc, eventlog.API, w.cfg.Stream, req, func(m *nats.Msg) error {
		seq, _ = eventlog.MsgSeq(m) // as before: unreadable, it counts as relevant
		return nil
	})
	return seq, err
}

// headReached reports whether the log holds an event at or after seq.
func (w *Worker) headReached(ctx context.Context, seq uint64) (bool, error) {
	_, err := w.seek(ctx, eventlog.GetRequest{Seq: seq, NextBySubject: w.cfg.SubjectPrefix + ".>"})
	switch {
	case errors.Is(err, eventlog.ErrNoMessage):
		return false, nil
	case err != nil && !isStatus(err):
		return false, fmt.Errorf("%w: %v", ErrNotUpToDate, err)
	case err != nil:
		return false, err
	}
	return true, nil
}

// relevantBetween reports whether an event of the source has a seq in
// [from, upTo] (upTo 0: no bound), using direct gets.
func (w *Worker) relevantBetween(ctx context.Context, from, upTo uint64) (bool, error) {
	for _, subj := range w.subjects {
		seq, err := w.seek(ctx, eventlog.GetRequest{Seq: from, NextBySubject: subj})
		switch {
		case errors.Is(err, eventlog.ErrNoMessage):
			continue
		case err != nil && !isStatus(err):
			// As before the split: a request that failed (no answer, a
			// closed connection) is the projection not being up to date.
			return false, fmt.Errorf("%w: %v", ErrNotUpToDate, err)
		case err != nil:
			return false, err
		}
		if upTo == 0 || seq <= upTo {
			return true, nil
		}
	}
	return false, nil
}

// isStatus reports whether a direct get failed with a status from the
// server, rather than before the server answered.
func isStatus(err error) bool {
	var se *eventlog.StatusError
	return errors.As(err, &se)
}
