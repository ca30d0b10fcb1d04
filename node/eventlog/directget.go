package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// API is the JetStream API prefix of the local domain; across a leafnode
// a peer's stream is reached at DomainAPI(peer).
const API = "$JS.API"

// DomainAPI is the JetStream API prefix of domain.
func DomainAPI(domain string) string { return "$JS." + domain + ".API" }

// GetRequest is JetStream's direct get (JSApiMsgGetRequest).
type GetRequest struct {
	Seq uint64 `json:"seq,omitempty"`
	// NextBySubject reads the first message at or after Seq on this subject.
	NextBySubject string `json:"next_by_subj,omitempty"`
	// Batch, when not 0, asks for up to Batch messages and an end marker.
	Batch int `json:"batch,omitempty"`
	// MaxBytes is always set: without it nats-server reads its options
	// unlocked, which races with the reloads that mesh links make.
	MaxBytes int `json:"max_bytes"`
}

// ErrNoMessage is a direct get that found no message.
var ErrNoMessage = errors.New("no message")

// defaultGetBytes bounds a direct get that sets no MaxBytes.
const defaultGetBytes = 1 << 20

// DirectGet sends a direct get for stream to api and calls each with every
// message of the answer. A get without Batch answers one message, or
// ErrNoMessage. A batched get ends with the count of matching messages
// left after it (0 at the end of the stream); it finds none: 0, nil.
func DirectGet(ctx context.Context, nc *nats.Conn, api, stream string, req GetRequest, each func(*nats.Msg) error) (pending uint64, err error) {
	if req.MaxBytes == 0 {
		req.MaxBytes = defaultGetBytes
	}
	body, _ := json.Marshal(req)
	subject := api + ".DIRECT.GET." + stream
	if req.Batch == 0 {
		m, err := nc.RequestWithContext(ctx, subject, body)
		if err != nil {
			return 0, err
		}
		if err := getStatus(m); err != nil {
			return 0, err
		}
		return 0, each(m)
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, body); err != nil {
		return 0, err
	}
	for {
		m, err := nextMsg(ctx, sub)
		if err != nil {
			return 0, fmt.Errorf("direct get: %w", err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return pending, nil
		default:
			if err := getStatus(m); errors.Is(err, ErrNoMessage) {
				return 0, nil
			} else if err != nil {
				return 0, err
			}
		}
		if err := each(m); err != nil {
			return 0, err
		}
	}
}

// getMsgTimeout bounds the wait for each message of a batched get whose
// ctx has no deadline: a long page is not cut short, a silent server is.
const getMsgTimeout = 5 * time.Second

func nextMsg(ctx context.Context, sub *nats.Subscription) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); ok {
		return sub.NextMsgWithContext(ctx)
	}
	if ctx.Done() == nil {
		return sub.NextMsg(getMsgTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, getMsgTimeout)
	defer cancel()
	return sub.NextMsgWithContext(ctx)
}

// StatusError is a direct get the server answered with an error status.
type StatusError struct {
	Status, Description string
}

func (e *StatusError) Error() string { return "direct get: " + e.Status + " " + e.Description }

// getStatus reads the status of a direct get's answer.
func getStatus(m *nats.Msg) error {
	switch st := m.Header.Get("Status"); st {
	case "":
		return nil
	case "404": // nothing matches from that seq
		return ErrNoMessage
	default:
		return &StatusError{Status: st, Description: m.Header.Get("Description")}
	}
}

// MsgSeq is the stream seq of a direct get's message.
func MsgSeq(m *nats.Msg) (uint64, error) {
	seq, err := strconv.ParseUint(m.Header.Get(nats.JSSequence), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("direct get: bad sequence header: %w", err)
	}
	return seq, nil
}

// OriginSeqAt reads the Dm-Origin-Seq header of message seq of an export
// stream, through api.
func OriginSeqAt(ctx context.Context, nc *nats.Conn, api, stream string, seq uint64) (uint64, error) {
	var v uint64
	_, err := DirectGet(ctx, nc, api, stream, GetRequest{Seq: seq}, func(m *nats.Msg) error {
		var err error
		if v, err = strconv.ParseUint(m.Header.Get(HeaderOriginSeq), 10, 64); err != nil {
			return fmt.Errorf("message %d of %s has no %s", seq, stream, HeaderOriginSeq)
		}
		return nil
	})
	var se *StatusError
	switch {
	case errors.Is(err, ErrNoMessage):
		return 0, fmt.Errorf("direct get %s %d: 404 Message Not Found", stream, seq)
	case errors.As(err, &se):
		return 0, fmt.Errorf("direct get %s %d: %s %s", stream, seq, se.Status, se.Description)
	}
	return v, err
}
