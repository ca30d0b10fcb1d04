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
	Progress    float64  `json:"progress"`              // applied/head, 0..1
	ETASeconds  float64  `json:"eta_seconds,omitempty"` // while building, at the current rate
	Documents   int      `json:"documents"`
	FileBytes   int64    `json:"file_bytes"`
	DeadLetters int      `json:"dead_letters"`
	Failure     *Failure `json:"failure,omitempty"`
	LastError   string   `json:"last_error,omitempty"`
}

// Status reports the worker's state and figures; head is the stream's last seq.
func (w *Worker) Status(head uint64) Status {
	st := w.store.Stats()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Status{
		Name: w.cfg.Spec.Name, Version: w.cfg.Spec.Version, State: w.state,
		Applied: w.applied.Load(), Head: head, LagEvents: w.pending,
		Documents: st.Documents, FileBytes: st.FileBytes, DeadLetters: w.dead,
		Failure: w.failure, LastError: w.lastError, Rate: w.rate.PerSecond(now),
	}
	if w.state == StateLive && w.pending == 0 {
		s.LagEvents = 0
	} else if !w.lastTime.IsZero() {
		s.LagSeconds = now.Sub(w.lastTime).Seconds()
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
