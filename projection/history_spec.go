package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HistorySpec is a projection's history setting. In YAML it is a boolean
// (`history: true` keeps every version) or a retention:
// `history: {keep: 100, max_age: 720h}`, either field alone or both.
type HistorySpec struct {
	// On keeps history: true, or any retention.
	On bool
	// Keep is how many versions of each document are kept, the latest
	// included; 0 keeps them all.
	Keep int
	// MaxAge keeps the versions whose event is younger than it (the
	// latest version of a document always stays); 0 keeps them all.
	MaxAge time.Duration
}

type historyRetention struct {
	Keep   int    `json:"keep,omitempty"`
	MaxAge string `json:"max_age,omitempty"`
}

// MarshalJSON writes true, false or the retention, as the YAML has it.
func (h HistorySpec) MarshalJSON() ([]byte, error) {
	if !h.On || (h.Keep == 0 && h.MaxAge == 0) {
		return []byte(strconv.FormatBool(h.On)), nil
	}
	r := historyRetention{Keep: h.Keep}
	if h.MaxAge != 0 {
		r.MaxAge = h.MaxAge.String()
	}
	return json.Marshal(r)
}

// UnmarshalJSON reads a boolean or a retention, strictly.
func (h *HistorySpec) UnmarshalJSON(b []byte) error {
	var on bool
	if err := json.Unmarshal(b, &on); err == nil {
		*h = HistorySpec{On: on}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r historyRetention
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("history: want true, false or {keep: N, max_age: 720h}: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if r.Keep < 0 {
		return errors.New("history: keep must not be negative")
	}
	out := HistorySpec{On: true, Keep: r.Keep}
	if r.MaxAge != "" {
		d, err := time.ParseDuration(r.MaxAge)
		if err != nil || d <= 0 {
			return fmt.Errorf("history: max_age %q: want a positive duration such as 720h", r.MaxAge)
		}
		out.MaxAge = d
	}
	*h = out
	return nil
}

// IsZero reports no history, for omitzero.
func (h HistorySpec) IsZero() bool { return !h.On }

// retention describes the limits for messages: "keep: 100, max_age: 720h".
func (h HistorySpec) retention() string {
	var parts []string
	if h.Keep > 0 {
		parts = append(parts, fmt.Sprintf("keep: %d", h.Keep))
	}
	if h.MaxAge > 0 {
		parts = append(parts, "max_age: "+h.MaxAge.String())
	}
	return strings.Join(parts, ", ")
}
