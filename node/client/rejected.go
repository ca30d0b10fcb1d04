package client

import (
	"encoding/json"

	"github.com/datamesh/datamesh/node/protocol"
)

// Rejected lists the rejected record (of aggregate; "": all), the appends
// published without a reply that the node refused, reading every page.
func (c *Client) Rejected(aggregate string) ([]protocol.RejectedEvent, error) {
	all := []protocol.RejectedEvent{}
	req := protocol.RejectedListRequest{Aggregate: aggregate, Limit: 1000}
	for {
		b, _ := json.Marshal(req)
		var r protocol.RejectedListReply
		if err := c.call(protocol.SubjectRejectedList, nil, b, &r); err != nil {
			return nil, err
		}
		all = append(all, r.Rejected...)
		if r.Next == 0 {
			return all, nil
		}
		req.After = r.Next
	}
}

// ReplayRejected appends rejected events again (those at seqs; none: all,
// of aggregate if not ""), each once, and removes those stored.
func (c *Client) ReplayRejected(aggregate string, seqs ...uint64) (*protocol.RejectedReplayReply, error) {
	b, _ := json.Marshal(protocol.RejectedReplayRequest{Aggregate: aggregate, Seqs: seqs})
	var r protocol.RejectedReplayReply
	if err := c.call(protocol.SubjectRejectedReplay, nil, b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RejectedStatus counts the rejected record.
func (c *Client) RejectedStatus() (*protocol.RejectedStatus, error) {
	var r protocol.RejectedStatus
	if err := c.call(protocol.SubjectRejectedStatus, nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
