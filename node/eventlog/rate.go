package eventlog

import "time"

// Rate measures events per second over windows of a few seconds: how fast
// a projection or a link moves through the log, for status. Not safe for
// concurrent use: its owner guards it.
type Rate struct {
	start time.Time
	count uint64
	last  float64
}

// Rate windows: a figure is kept for rateWindow, and a rate with no events
// for rateIdle reads 0.
const (
	rateWindow = 5 * time.Second
	rateIdle   = 10 * time.Second
)

// Add counts n events at now.
func (r *Rate) Add(n int, now time.Time) {
	if r.start.IsZero() {
		r.start = now
	}
	r.count += uint64(n)
	if d := now.Sub(r.start); d >= rateWindow {
		r.last = float64(r.count) / d.Seconds()
		r.start, r.count = now, 0
	}
}

// PerSecond is the rate at now: the current window once it is a second
// old, else the last full window, and 0 once idle for rateIdle.
func (r *Rate) PerSecond(now time.Time) float64 {
	if d := now.Sub(r.start); !r.start.IsZero() && d >= time.Second && r.count > 0 {
		return float64(r.count) / d.Seconds()
	}
	if !r.start.IsZero() && now.Sub(r.start) > rateIdle {
		return 0
	}
	return r.last
}
