package projection

import "time"

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
	Progress    float64  `json:"progress"`              // the source's events applied / the source's events, 0..1
	ETASeconds  float64  `json:"eta_seconds,omitempty"` // while building, at the current rate
	Documents   int      `json:"documents"`
	FileBytes   int64    `json:"file_bytes"`
	DeadLetters int      `json:"dead_letters"`
	Failure     *Failure `json:"failure,omitempty"`
	LastError   string   `json:"last_error,omitempty"`
	// Attempts counts the failed attempts in a row of a retrying worker.
	Attempts int `json:"attempts,omitempty"`
}

// Status reports the worker's state and figures; head is the stream's last
// seq. Progress and, for a version that is not live, LagEvents count the
// events of the projection's own source, not the whole log.
func (w *Worker) Status(head uint64) Status {
	s := w.figures(head)
	w.progress(&s) // asks the server: not under w.mu
	return s
}

// figures is the status but for the progress, from what the worker keeps.
func (w *Worker) figures(head uint64) Status {
	st := w.store.Stats()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Status{
		Name: w.cfg.Spec.Name, Version: w.cfg.Spec.Version, State: w.state,
		Applied: w.applied.Load(), Head: head, LagEvents: w.pending,
		Documents: st.Documents, FileBytes: st.FileBytes, DeadLetters: w.dead,
		Failure: w.failure, LastError: w.lastError, Rate: w.rate.PerSecond(now),
		Attempts: w.attempts,
	}
	if w.state == StateLive && w.pending == 0 {
		s.LagEvents = 0
	} else if !w.lastTime.IsZero() {
		s.LagSeconds = now.Sub(w.lastTime).Seconds()
	}
	return s
}
