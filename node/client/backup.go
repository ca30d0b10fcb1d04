package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
)

// BackupOptions tune Backup.
type BackupOptions struct {
	// ChunkSize and Window are the request's (0: the node's defaults).
	ChunkSize int
	Window    int
	// Begin, if set, is called with the first message: what the backup
	// will hold.
	Begin func(protocol.BackupBegin)
	// Progress, if set, is called after each chunk with the bytes written.
	Progress func(written int64)
}

// Backup asks the node for a backup (dm.admin.backup) and writes it to w as
// it arrives, acknowledging each chunk once written. It checks that the
// chunks come in order and that their size and SHA-256 are the ones the
// node's end message gives, and returns that message. Every message must
// come within the client's timeout of the previous one; ctx stops the
// backup (the node gives up once the acknowledgements stop).
func (c *Client) Backup(ctx context.Context, w io.Writer, o BackupOptions) (*protocol.BackupEnd, error) {
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	req := nats.NewMsg(protocol.SubjectBackup)
	req.Reply = inbox
	if o.ChunkSize != 0 || o.Window != 0 {
		req.Data, _ = json.Marshal(protocol.BackupRequest{ChunkSize: o.ChunkSize, Window: o.Window})
	}
	if err := c.nc.PublishMsg(req); err != nil {
		return nil, err
	}
	hash := sha256.New()
	var written int64
	var seq uint64
	for begun := false; ; {
		m, err := c.next(ctx, sub)
		if err != nil {
			return nil, err
		}
		kind := m.Header.Get(protocol.HeaderBackup)
		switch {
		case !begun && kind != protocol.BackupMsgBegin:
			return nil, fmt.Errorf("%s: the first message is %q, want %s", protocol.SubjectBackup, kind, protocol.BackupMsgBegin)
		case kind == protocol.BackupMsgBegin:
			begun = true
			var b protocol.BackupBegin
			if err := json.Unmarshal(m.Data, &b); err != nil {
				return nil, fmt.Errorf("%s: begin: %w", protocol.SubjectBackup, err)
			}
			if o.Begin != nil {
				o.Begin(b)
			}
		case kind == protocol.BackupMsgChunk:
			seq++
			if got := m.Header.Get(protocol.HeaderBackupSeq); got != strconv.FormatUint(seq, 10) {
				return nil, fmt.Errorf("%s: chunk %s arrived, want %d: a chunk was lost", protocol.SubjectBackup, got, seq)
			}
			if _, err := w.Write(m.Data); err != nil {
				return nil, fmt.Errorf("write the backup: %w", err)
			}
			hash.Write(m.Data)
			written += int64(len(m.Data))
			if err := m.Respond(nil); err != nil {
				return nil, err
			}
			if o.Progress != nil {
				o.Progress(written)
			}
		case kind == protocol.BackupMsgEnd:
			var end protocol.BackupEnd
			if err := json.Unmarshal(m.Data, &end); err != nil {
				return nil, fmt.Errorf("%s: end: %w", protocol.SubjectBackup, err)
			}
			if sum := hex.EncodeToString(hash.Sum(nil)); end.Size != written || end.SHA256 != sum || end.Chunks != seq {
				return nil, fmt.Errorf("%s: received %d bytes in %d chunks (sha256 %s), the node sent %d in %d (sha256 %s)",
					protocol.SubjectBackup, written, seq, sum, end.Size, end.Chunks, end.SHA256)
			}
			return &end, nil
		default:
			return nil, fmt.Errorf("%s: unexpected message %q", protocol.SubjectBackup, kind)
		}
	}
}

// next returns the next message of a backup, or the error it carries.
func (c *Client) next(ctx context.Context, sub *nats.Subscription) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	m, err := sub.NextMsgWithContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("%s: nothing from the node for %v", protocol.SubjectBackup, c.timeout)
	}
	if err != nil {
		return nil, err
	}
	if m.Header.Get("Status") == "503" {
		return nil, fmt.Errorf("no DataMesh node answers on %s at %s (is `datamesh node` running?)", protocol.SubjectBackup, c.nc.ConnectedUrlRedacted())
	}
	if m.Header.Get(micro.ErrorCodeHeader) != "" {
		var er protocol.ErrorReply
		if err := json.Unmarshal(m.Data, &er); err != nil || er.Error == nil {
			return nil, fmt.Errorf("%s: %s %s", protocol.SubjectBackup, m.Header.Get(micro.ErrorCodeHeader), m.Header.Get(micro.ErrorHeader))
		}
		return nil, er.Error
	}
	return m, nil
}
