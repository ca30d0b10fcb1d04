package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// This file speaks JetStream's API as its wire protocol is documented
// (nats-server's jetstream_api.go), on the account of the connection it
// is given: nats.go has no helper for snapshots and restores, and the raw
// replies keep a stream's config exactly as the server reports it.

const (
	apiStreamInfo     = "$JS.API.STREAM.INFO."
	apiStreamSnapshot = "$JS.API.STREAM.SNAPSHOT."
	apiStreamRestore  = "$JS.API.STREAM.RESTORE."
	apiMsgGet         = "$JS.API.STREAM.MSG.GET."

	// snapshotChunk and snapshotWindow are what the backup asks
	// JetStream for: 128 KiB chunks (its default), 8 of them in flight.
	snapshotChunk  = 128 * 1024
	snapshotWindow = 8 * snapshotChunk
	// apiTimeout bounds one JetStream API request.
	apiTimeout = 10 * time.Second
	// chunkTimeout bounds the wait for JetStream's next snapshot chunk
	// (it gives up itself after 5 s without an ack from us).
	chunkTimeout = 30 * time.Second

	// errNameInUseRestore is JetStream's "stream name already in use,
	// cannot restore"; errStreamNotFound its "stream not found".
	errNameInUseRestore = 10130
	errStreamNotFound   = 10059

	// Headers of a status message (nats.go keeps its names unexported).
	statusHeader      = "Status"
	descriptionHeader = "Description"
)

// apiError is the error of a JetStream API reply.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d)", e.Description, e.ErrCode) }

// request sends a JetStream API request and decodes its reply into out,
// which must have an Error field decoded into errOut.
func request(ctx context.Context, nc *nats.Conn, subject string, req, out any) error {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	resp, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	var e struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &e); err != nil {
		return fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	if e.Error != nil {
		return e.Error
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	return nil
}

type streamInfo struct {
	Config json.RawMessage `json:"config"`
	State  State           `json:"state"`
}

func getStreamInfo(ctx context.Context, nc *nats.Conn, stream string) (*streamInfo, error) {
	var info streamInfo
	if err := request(ctx, nc, apiStreamInfo+stream, nil, &info); err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return &info, nil
}

// streamNames lists the streams of nc's account.
func streamNames(ctx context.Context, nc *nats.Conn) ([]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	lister := js.StreamNames(ctx)
	var names []string
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		return nil, err
	}
	return names, nil
}

// midBatch reports whether the message at seq is part of an atomic batch
// whose last message is not at or before seq. JetStream commits a batch
// message by message without holding off a snapshot's view of the stream,
// so a snapshot may end inside one; reading the message waits for the
// commit under way (reads are isolated from batch commits).
func midBatch(ctx context.Context, nc *nats.Conn, stream string, seq uint64) (bool, error) {
	if seq == 0 {
		return false, nil
	}
	var resp struct {
		Message struct {
			Header []byte `json:"hdrs"`
		} `json:"message"`
	}
	err := request(ctx, nc, apiMsgGet+stream, map[string]uint64{"seq": seq}, &resp)
	var e *apiError
	if errors.As(err, &e) && e.Code == 404 {
		return false, nil // deleted since (a KV update): not a batch message
	}
	if err != nil {
		return false, err
	}
	h := parseHeader(resp.Message.Header)
	return h.Get("Nats-Batch-Id") != "" && h.Get("Nats-Batch-Commit") == "", nil
}

// parseHeader reads a NATS header block ("NATS/1.0\r\nKey: value\r\n\r\n").
func parseHeader(b []byte) textproto.MIMEHeader {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	if _, err := r.ReadLine(); err != nil {
		return nil
	}
	h, _ := r.ReadMIMEHeader()
	return h
}

// snapshot is one JetStream snapshot being received.
type snapshot struct {
	sub    *nats.Subscription
	Config json.RawMessage
	State  json.RawMessage
	state  State
}

// startSnapshot asks JetStream for a snapshot of stream, without its
// consumers (the node keeps no durable consumer: its readers are ordered
// consumers that start where their owner says). The deliver subject is
// subscribed before the request, so JetStream finds interest at once.
func startSnapshot(ctx context.Context, nc *nats.Conn, stream string) (*snapshot, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	req := map[string]any{"deliver_subject": inbox, "no_consumers": true,
		"chunk_size": snapshotChunk, "window_size": snapshotWindow}
	var resp struct {
		Config json.RawMessage `json:"config"`
		State  json.RawMessage `json:"state"`
	}
	if err := request(ctx, nc, apiStreamSnapshot+stream, req, &resp); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("snapshot of %s: %w", stream, err)
	}
	s := &snapshot{sub: sub, Config: resp.Config, State: resp.State}
	if err := json.Unmarshal(resp.State, &s.state); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("snapshot of %s: state: %w", stream, err)
	}
	return s, nil
}

// next returns the next chunk, or nil at the end of the snapshot. The
// caller acks a chunk (ack) once it has handed it on: that is JetStream's
// flow control.
func (s *snapshot) next(ctx context.Context) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, chunkTimeout)
	defer cancel()
	m, err := s.sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot chunk: %w", err)
	}
	if len(m.Data) > 0 {
		return m, nil
	}
	// The end: an empty message, with a 204 status or none; 408 and 500
	// say why JetStream gave up.
	if st := m.Header.Get(statusHeader); st != "" && st != "204" {
		return nil, fmt.Errorf("snapshot ended with status %s %s", st, m.Header.Get(descriptionHeader))
	}
	return nil, nil
}

func ack(m *nats.Msg) error {
	if m.Reply == "" {
		return nil // the last chunk asks for no ack
	}
	return m.Respond(nil)
}

// abandon stops receiving: JetStream sees no interest and stops sending.
func (s *snapshot) abandon() { s.sub.Unsubscribe() }

// restoreStream recreates a stream from its snapshot: the restore request
// with its config and state, then every chunk as a request that JetStream
// acknowledges with an empty reply, then an empty message, answered once
// the stream is restored. chunks yields the snapshot's chunks in order;
// sent is told the size of each.
func restoreStream(ctx context.Context, nc *nats.Conn, rec StreamRecord, name string, chunks func(func([]byte) error) error) (State, error) {
	deliver, err := startRestore(ctx, nc, rec, name)
	if err != nil {
		return State{}, err
	}
	// In a cluster the server that receives the snapshot answers the
	// restore request at once, and its subscription to the deliver subject
	// may reach the other servers a moment later: a chunk that found no
	// responder was not received, and is sent again.
	send := func(ctx context.Context, b []byte) (*nats.Msg, error) {
		for {
			m, err := nc.RequestWithContext(ctx, deliver, b)
			if !errors.Is(err, nats.ErrNoResponders) {
				return m, err
			}
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(retryPause):
			}
		}
	}
	err = chunks(func(b []byte) error {
		ctx, cancel := context.WithTimeout(ctx, chunkTimeout)
		defer cancel()
		r, err := send(ctx, b)
		if err != nil {
			return err
		}
		if len(r.Data) > 0 {
			var e struct {
				Error *apiError `json:"error"`
			}
			if json.Unmarshal(r.Data, &e) == nil && e.Error != nil {
				return e.Error
			}
		}
		return nil
	})
	if err != nil {
		return State{}, fmt.Errorf("restore %s: %w", name, err)
	}
	// JetStream answers the end once the stream is rebuilt: bound by the
	// caller's context only, since a large log takes a while.
	r, err := send(ctx, nil)
	if err != nil {
		return State{}, fmt.Errorf("restore %s: end: %w", name, err)
	}
	// The reply is a stream create response: the stream's info inline.
	var done struct {
		Error *apiError `json:"error"`
		State *State    `json:"state"`
	}
	if err := json.Unmarshal(r.Data, &done); err != nil {
		return State{}, fmt.Errorf("restore %s: decode reply: %w", name, err)
	}
	if done.Error != nil {
		return State{}, fmt.Errorf("restore %s: %w", name, done.Error)
	}
	if done.State == nil {
		return State{}, fmt.Errorf("restore %s: no stream state in the reply", name)
	}
	return *done.State, nil
}

// startRestore asks JetStream to restore stream name and returns the
// subject it takes the snapshot's chunks on.
func startRestore(ctx context.Context, nc *nats.Conn, rec StreamRecord, name string) (string, error) {
	var resp struct {
		DeliverSubject string `json:"deliver_subject"`
	}
	// In a cluster, a stream deleted an instant before may still be known
	// to the meta group (the restore into a running node replaces the
	// empty log), and for a moment no server may answer: the request is
	// tried again then (nothing is sent before it is answered).
	for attempt := 1; ; attempt++ {
		err := request(ctx, nc, apiStreamRestore+name, map[string]json.RawMessage{"config": rec.Config, "state": rec.State}, &resp)
		var e *apiError
		if err == nil {
			break
		}
		retry := errors.Is(err, nats.ErrNoResponders) || (errors.As(err, &e) && (e.ErrCode == errNameInUseRestore || e.Code == 503))
		if !retry || attempt == maxAttempts {
			return "", fmt.Errorf("restore %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("restore %s: %w", name, err)
		case <-time.After(retryPause):
		}
	}
	return resp.DeliverSubject, nil
}
