package api

import "time"

// Outcomes an Observer is told besides the error codes of replies.
const (
	// OutcomeStored: the append stored its events.
	OutcomeStored = "stored"
	// OutcomeDeduplicated: every ce-id of the append was stored before, so
	// nothing was stored and the reply says duplicate. It is not called
	// "duplicate": that is the error code of a batch whose ids were
	// stored with other content.
	OutcomeDeduplicated = "deduplicated"
	// OutcomeOK: the query was answered.
	OutcomeOK = "ok"
)

// Observer is told of every append and query the API answers, for the
// node's metrics; it keeps the API free of any metrics library. With a nil
// Observer in Deps the API does not even read the clock. Its methods run
// on the handlers' and the acks' goroutines, so they must be cheap and
// must not block.
type Observer interface {
	// Append: outcome is OutcomeStored, OutcomeDeduplicated or the error
	// code of the reply; events is the number of events stored (a batch's
	// count; 0 unless stored); d runs from the request's arrival to its
	// answer, told just before the reply is sent (so a client that reads
	// the metrics after its reply finds its request counted).
	Append(outcome string, events int, d time.Duration)
	// Query: projection is the projection's name, "" when the request
	// named none that exists (clients cannot make up label values);
	// outcome is OutcomeOK or the error code of the reply; waited says
	// the query had to wait for its min_seq.
	Query(projection, outcome string, waited bool, d time.Duration)
}

// now is the time a request arrived, read only when something observes.
func (a *API) now() time.Time {
	if a.deps.Observer == nil {
		return time.Time{}
	}
	return time.Now()
}

// observeAppend tells the observer, if any, of an append answered.
func (a *API) observeAppend(start time.Time, outcome string, events int) {
	if o := a.deps.Observer; o != nil {
		o.Append(outcome, events, time.Since(start))
	}
}

// observeQuery tells the observer, if any, of a query answered.
func (a *API) observeQuery(start time.Time, projection, outcome string, waited bool) {
	if o := a.deps.Observer; o != nil {
		o.Query(projection, outcome, waited, time.Since(start))
	}
}
