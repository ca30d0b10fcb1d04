package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// LeaderGet finds the seq of the first message at or after req.Seq on
// req.NextBySubject, asking the stream's leader ($JS.API.STREAM.MSG.GET):
// on a replicated stream a direct get may be answered by any replica,
// one that lags included, so "no message up to seq N" from a direct get
// proves nothing about N; from the leader it does, for every seq it
// acknowledged. ErrNoMessage if there is none.
func LeaderGet(ctx context.Context, nc *nats.Conn, api, stream string, req GetRequest) (uint64, error) {
	body, _ := json.Marshal(struct {
		Seq   uint64 `json:"seq,omitempty"`
		Next  string `json:"next_by_subj,omitempty"`
		NoHdr bool   `json:"no_hdr"`
	}{req.Seq, req.NextBySubject, true})
	// A leader that died is not answered for until its group notices:
	// never wait for it without a bound.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, getMsgTimeout)
		defer cancel()
	}
	m, err := nc.RequestWithContext(ctx, api+".STREAM.MSG.GET."+stream, body)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, fmt.Errorf("stream msg get: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return 0, ErrNoMessage
	case resp.Error != nil:
		return 0, &StatusError{Status: strconv.Itoa(resp.Error.Code), Description: resp.Error.Description}
	case resp.Message == nil:
		return 0, fmt.Errorf("stream msg get: no message in the answer")
	}
	return resp.Message.Seq, nil
}
