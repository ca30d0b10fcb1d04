package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/protocol"
)

// backupAckTimeout is how long the node waits for a client to acknowledge
// a chunk before it gives the backup up.
const backupAckTimeout = 30 * time.Second

// handleBackup streams a backup of the node to the request's reply
// subject (docs/backup.md): begin, chunks the client acknowledges, end.
// The request is answered at once; the backup runs off the handler and
// stops when the API closes.
func (a *API) handleBackup(req micro.Request) {
	var body protocol.BackupRequest
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &body); err != nil {
			replyError(req, badRequest(`the body is optional; if given, want {"chunk_size": <bytes>, "window": <chunks>}: %v`, err))
			return
		}
	}
	if body.ChunkSize == 0 {
		body.ChunkSize = protocol.BackupDefaultChunk
	}
	if body.Window == 0 {
		body.Window = protocol.BackupDefaultWindow
	}
	if body.ChunkSize < protocol.BackupMinChunk || body.ChunkSize > protocol.BackupMaxChunk || body.Window < 0 || body.Window > protocol.BackupMaxWindow {
		replyError(req, badRequest("chunk_size must be %d to %d bytes and window 1 to %d chunks",
			protocol.BackupMinChunk, protocol.BackupMaxChunk, protocol.BackupMaxWindow))
		return
	}
	if req.Reply() == "" {
		return // nowhere to send the backup
	}
	ctx, cancel := opContext()
	defer cancel()
	job, err := a.deps.Backup.Prepare(ctx)
	if err != nil {
		fail(req, err)
		return
	}
	a.goAnswer(func() {
		defer job.Close()
		if err := a.sendBackup(job, req.Reply(), body); err != nil {
			a.log.Warn("backup failed", "error", err)
			a.respondError(req.Reply(), WireError(err))
		}
	})
}

// sendBackup sends the begin message, the chunks and the end message, all
// on the job's connection, so they arrive in order.
func (a *API) sendBackup(job *backup.Job, reply string, body protocol.BackupRequest) error {
	m := job.Manifest()
	begin := protocol.BackupBegin{Node: m.Node, Version: m.Version, Format: m.Format,
		ChunkSize: body.ChunkSize, Window: body.Window, Streams: backupStreams(m.Streams)}
	nc := job.Conn()
	if err := publishBackup(nc, reply, protocol.BackupMsgBegin, begin); err != nil {
		return err
	}
	w, err := newChunkWriter(a.ctx, nc, reply, body.ChunkSize, body.Window)
	if err != nil {
		return err
	}
	defer w.close()
	taken, err := job.WriteTo(a.ctx, w)
	if err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return err
	}
	job.EndTurn() // the client may ask for the next one as soon as it hears the end
	return publishBackup(nc, reply, protocol.BackupMsgEnd, protocol.BackupEnd{
		Size: w.size, SHA256: hex.EncodeToString(w.hash.Sum(nil)), Chunks: w.seq, Streams: backupStreams(taken)})
}

func publishBackup(nc *nats.Conn, reply, kind string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return nc.PublishMsg(&nats.Msg{Subject: reply, Data: b, Header: nats.Header{protocol.HeaderBackup: {kind}}})
}

func backupStreams(streams []backup.Stream) []protocol.BackupStream {
	out := make([]protocol.BackupStream, len(streams))
	for i, s := range streams {
		out[i] = protocol.BackupStream{Account: s.Account, Stream: s.Name, Messages: s.State.Messages,
			Bytes: s.State.Bytes, FirstSeq: s.State.FirstSeq, LastSeq: s.State.LastSeq}
	}
	return out
}

// chunkWriter sends what is written to it as chunks of size bytes, with
// at most window of them unacknowledged: a slot is taken per chunk sent
// and given back per ack, as JetStream's own snapshot does.
type chunkWriter struct {
	ctx    context.Context
	nc     *nats.Conn
	reply  string
	inbox  string
	sub    *nats.Subscription
	slots  chan struct{}
	window int
	buf    []byte
	size   int64
	seq    uint64
	hash   hash.Hash
}

func newChunkWriter(ctx context.Context, nc *nats.Conn, reply string, size, window int) (*chunkWriter, error) {
	w := &chunkWriter{ctx: ctx, nc: nc, reply: reply, inbox: nc.NewInbox(), slots: make(chan struct{}, window),
		window: window, buf: make([]byte, 0, size), hash: sha256.New()}
	for range window {
		w.slots <- struct{}{}
	}
	var err error
	w.sub, err = nc.Subscribe(w.inbox+".*", func(*nats.Msg) {
		select {
		case w.slots <- struct{}{}:
		default: // an ack too many
		}
	})
	return w, err
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.send(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) send() error {
	if err := w.take(); err != nil {
		return err
	}
	w.seq++
	seq := strconv.FormatUint(w.seq, 10)
	m := &nats.Msg{Subject: w.reply, Reply: w.inbox + "." + seq, Data: w.buf,
		Header: nats.Header{protocol.HeaderBackup: {protocol.BackupMsgChunk}, protocol.HeaderBackupSeq: {seq}}}
	if err := w.nc.PublishMsg(m); err != nil {
		return protocol.NewError(protocol.CodeUnavailable, "send chunk %d: %v", w.seq, err)
	}
	w.hash.Write(w.buf)
	w.size += int64(len(w.buf))
	w.buf = make([]byte, 0, cap(w.buf))
	return nil
}

// take waits for a free slot in the window.
func (w *chunkWriter) take() error {
	t := time.NewTimer(backupAckTimeout)
	defer t.Stop()
	select {
	case <-w.slots:
		return nil
	case <-w.ctx.Done():
		return protocol.NewError(protocol.CodeUnavailable, "backup stopped: the node is shutting down")
	case <-t.C:
		return protocol.NewError(protocol.CodeUnavailable, "backup stopped: the client acknowledged no chunk for %v", backupAckTimeout)
	}
}

// finish sends what is left and waits until every chunk is acknowledged.
func (w *chunkWriter) finish() error {
	if len(w.buf) > 0 {
		if err := w.send(); err != nil {
			return err
		}
	}
	for range w.window {
		if err := w.take(); err != nil {
			return err
		}
	}
	return nil
}

func (w *chunkWriter) close() { w.sub.Unsubscribe() }
