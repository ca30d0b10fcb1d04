package projection

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/eventlog"
)

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

// toEvent reads a stored message: <prefix>.<aggregate>.<id>.<type>.
func toEvent(prefix, subject string, seq uint64, h nats.Header, data []byte) *Event {
	ev := &Event{Seq: seq, Data: data, EventID: h.Get(eventlog.HeaderID), Source: h.Get(eventlog.HeaderSource),
		Time: h.Get(eventlog.HeaderTime), Type: h.Get(eventlog.HeaderType)}
	if aggregate, id, typ, ok := eventlog.ParseSubject(prefix, subject); ok {
		ev.Aggregate, ev.ID = aggregate, id
		if ev.Type == "" {
			ev.Type = typ
		}
	}
	return ev
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
