package api

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/protocol"
)

// handleRestore starts a restore of a backup into this clustered node
// (docs/cluster.md, "Moving a standalone node into a cluster"): it answers
// with the subject the client sends the file to, chunk by chunk, and
// receives it off the handler. The restore itself runs once the file is
// whole; the node refuses it unless it holds nothing (see
// backup.Import).
func (a *API) handleRestore(req micro.Request) {
	var body protocol.RestoreRequest
	if err := json.Unmarshal(req.Data(), &body); err != nil {
		replyError(req, badRequest(`want {"size": <bytes>, "sha256": <hex>} of the backup file: %v`, err))
		return
	}
	if a.cfg.Servers == nil {
		replyError(req, badRequest("node %s is standalone: restore a backup into a new data directory with `datamesh restore --in FILE --data DIR` while no node runs on it; dm.admin.restore moves a backup into a new cluster", a.cfg.Node))
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	if st := a.deps.Projections.Statuses(ctx); len(st) > 0 {
		replyError(req, protocol.NewError(protocol.CodeConflict, "server %s runs projection %s: a restore goes into a new cluster that runs none (nothing applied, no projection registered by the program)", a.cfg.Server, st[0].Name))
		return
	}
	if req.Reply() == "" {
		return
	}
	imp, err := a.deps.Backup.BeginRestore(ctx, backup.Upload{Size: body.Size, SHA256: body.SHA256})
	if err != nil {
		replyError(req, restoreError(err))
		return
	}
	nc := imp.Conn()
	subject := nc.NewInbox()
	sub, err := nc.SubscribeSync(subject)
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		imp.Close()
		replyError(req, protocol.NewError(protocol.CodeUnavailable, "receive the backup: %v", err))
		return
	}
	respondJSON(req, protocol.RestoreReady{Server: a.cfg.Server, Subject: subject, ChunkSize: protocol.RestoreChunk})
	a.goAnswer(func() {
		defer imp.Close()
		defer sub.Unsubscribe()
		a.receiveRestore(imp, sub)
	})
}

// receiveRestore writes each chunk and acknowledges it; the empty message
// that ends the file is answered once the restore is done.
func (a *API) receiveRestore(imp *backup.Import, sub *nats.Subscription) {
	for seq := 1; ; seq++ {
		ctx, cancel := context.WithTimeout(a.ctx, protocol.RestoreIdleSeconds*time.Second)
		m, err := sub.NextMsgWithContext(ctx)
		cancel()
		if err != nil {
			a.log.Warn("restore given up: no chunk from the client", "after", protocol.RestoreIdleSeconds*time.Second, "error", err)
			return
		}
		if len(m.Data) == 0 {
			a.finishRestore(imp, m.Reply)
			return
		}
		if got := m.Header.Get(protocol.HeaderRestoreSeq); got != strconv.Itoa(seq) {
			a.respondError(m.Reply, badRequest("chunk %s arrived, want %d: send the chunks in order, each after the previous one is answered", got, seq))
			return
		}
		if _, err := imp.Write(m.Data); err != nil {
			a.respondError(m.Reply, restoreError(err))
			return
		}
		if err := m.Respond(nil); err != nil {
			return
		}
	}
}

func (a *API) finishRestore(imp *backup.Import, reply string) {
	start := time.Now()
	res, err := imp.Finish(a.ctx)
	if err != nil {
		a.log.Warn("restore failed", "error", err)
		a.respondError(reply, restoreError(err))
		return
	}
	m := res.Manifest
	a.log.Info("backup restored", "node", m.Node, "created", m.Created, "streams", len(res.Streams), "took", time.Since(start).Round(time.Millisecond))
	end := protocol.RestoreEnd{Node: m.Node, Server: a.cfg.Server, Created: m.Created.Format(time.RFC3339), Version: m.Version,
		Size: res.Size, SHA256: res.SHA256, Streams: backupStreams(res.Streams), Replicas: res.Replicas}
	for _, b := range res.Buckets {
		end.Buckets = append(end.Buckets, protocol.RestoreBucket{Bucket: b.Bucket, Keys: b.Keys})
	}
	b, err := json.Marshal(end)
	if err != nil {
		a.respondError(reply, protocol.NewError(protocol.CodeInternal, "encode reply: %v", err))
		return
	}
	if err := imp.Conn().Publish(reply, b); err != nil {
		a.log.Warn("restore reply failed", "error", err)
	}
}

// restoreError is the wire error of a restore: a damaged file is the
// client's to fix, a node that is not empty a conflict.
func restoreError(err error) *protocol.Error {
	switch {
	case errors.Is(err, backup.ErrCorrupt):
		return protocol.NewError(protocol.CodeBadRequest, "%s", err.Error())
	case errors.Is(err, backup.ErrNotEmpty):
		return protocol.NewError(protocol.CodeConflict, "%s", err.Error())
	}
	return WireError(err)
}
