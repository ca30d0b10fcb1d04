package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
)

// SendOptions tune Send.
type SendOptions struct {
	// SHA256, if set, is the checksum the whole file must have (the one
	// `datamesh backup` printed).
	SHA256 string
	// Timeout bounds each request but the last (default 30 s); the last,
	// answered once the node holds the backup, is bounded by ctx only.
	Timeout time.Duration
	// Progress, if set, is told how many bytes of how many are sent.
	Progress func(sent, total int64)
	// Ready, if set, is told which server takes the backup.
	Ready func(protocol.RestoreReady)
}

// Send restores the backup in file into the running node nc is connected
// to, through dm.admin.restore (protocol.SubjectRestore): a clustered node
// whose log and registry are empty. It checks the file (layout and every
// checksum) before sending it, so a damaged file is refused here, and the
// node checks it again before it writes anything.
//
// It is the client side of the protocol; node/api/restore.go is the
// server's.
func Send(ctx context.Context, nc *nats.Conn, file string, o SendOptions) (*protocol.RestoreEnd, error) {
	if o.Timeout <= 0 {
		o.Timeout = protocol.RestoreIdleSeconds * time.Second
	}
	c, err := checkFile(file)
	if err != nil {
		return nil, err
	}
	if o.SHA256 != "" && !strings.EqualFold(o.SHA256, c.sha256) {
		return nil, corrupt("backup %s has checksum %s, want %s", file, c.sha256, o.SHA256)
	}
	var ready protocol.RestoreReady
	body, _ := json.Marshal(protocol.RestoreRequest{Size: c.size, SHA256: c.sha256})
	if err := call(ctx, nc, protocol.SubjectRestore, nats.NewMsg(protocol.SubjectRestore), body, o.Timeout, &ready); err != nil {
		return nil, err
	}
	if ready.Subject == "" || ready.ChunkSize <= 0 {
		return nil, fmt.Errorf("%s: the reply names no subject to send the backup to", protocol.SubjectRestore)
	}
	if o.Ready != nil {
		o.Ready(ready)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, ready.ChunkSize)
	var sent int64
	for seq := 1; ; seq++ {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			m := nats.NewMsg(ready.Subject)
			m.Header.Set(protocol.HeaderRestoreSeq, strconv.Itoa(seq))
			if err := call(ctx, nc, protocol.SubjectRestore, m, buf[:n], o.Timeout, nil); err != nil {
				return nil, err
			}
			sent += int64(n)
			if o.Progress != nil {
				o.Progress(sent, c.size)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
	}
	var end protocol.RestoreEnd
	if err := call(ctx, nc, protocol.SubjectRestore, nats.NewMsg(ready.Subject), nil, 0, &end); err != nil {
		return nil, err
	}
	return &end, nil
}

// call sends m with body and decodes the reply into out (nil: an empty
// reply is expected), or the error reply into a *protocol.Error. A timeout
// of 0 waits as long as ctx.
func call(ctx context.Context, nc *nats.Conn, what string, m *nats.Msg, body []byte, timeout time.Duration, out any) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	m.Data = body
	resp, err := nc.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("no DataMesh node answers on %s at %s (is `datamesh node` running, and the restore still under way?)", what, nc.ConnectedUrlRedacted())
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer from the node in %v", what, timeout)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.Header.Get(micro.ErrorCodeHeader) != "" {
		var er protocol.ErrorReply
		if err := json.Unmarshal(resp.Data, &er); err != nil || er.Error == nil {
			return fmt.Errorf("%s: %s %s", what, resp.Header.Get(micro.ErrorCodeHeader), resp.Header.Get(micro.ErrorHeader))
		}
		return er.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", what, err)
	}
	return nil
}
