package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

const (
	defaultReadLimit = 1000
	maxReadLimit     = 10000
	readTimeout      = 5 * time.Second
)

// handleRead serves dm.read.<aggregate>[.<id>]. Reads run off the handler
// so that one slow read does not hold up the others.
func (n *Node) handleRead(req micro.Request) {
	agg, id, e := splitTarget(req.Subject(), SubjectRead)
	if e != nil {
		replyError(req, e)
		return
	}
	var rr ReadRequest
	if body := bytes.TrimSpace(req.Data()); len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rr); err != nil {
			replyError(req, errBadRequest("read body: %v (want {\"from_seq\": N, \"limit\": L})", err))
			return
		}
	}
	if rr.Limit < 0 || rr.Limit > maxReadLimit {
		replyError(req, errBadRequest("limit %d: must be between 1 and %d", rr.Limit, maxReadLimit))
		return
	}
	if rr.Limit == 0 {
		rr.Limit = defaultReadLimit
	}
	filter := n.cfg.SubjectPrefix + "." + agg + ".>"
	if id != "" {
		filter = n.events.aggregateSubject(agg, id)
	}
	reply := req.Reply()
	n.events.pending.Add(1)
	go func() {
		defer n.events.pending.Done()
		events, next, err := n.events.read(filter, rr.FromSeq, rr.Limit)
		if err != nil {
			n.respondError(reply, errUnavailable("read: %v", err))
			return
		}
		n.respond(reply, ReadReply{Events: events, NextSeq: next})
	}()
}

// directGetRequest is JetStream's batched direct get (JSApiMsgGetRequest).
type directGetRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	NextFor  string `json:"next_by_subj"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// read returns up to limit events matching filter from seq on, using one
// batched direct get. next is the seq to continue from, 0 at the end.
func (l *eventLog) read(filter string, from uint64, limit int) (events []Event, next uint64, err error) {
	inbox := l.nc.NewRespInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, 0, err
	}
	defer sub.Unsubscribe()
	body, _ := json.Marshal(directGetRequest{Seq: from, NextFor: filter, Batch: limit, MaxBytes: l.readMaxBytes()})
	if err := l.nc.PublishRequest("$JS.API.DIRECT.GET."+l.cfg.StreamName, inbox, body); err != nil {
		return nil, 0, err
	}
	events = []Event{}
	for {
		m, err := sub.NextMsg(readTimeout)
		if err != nil {
			return nil, 0, fmt.Errorf("direct get: %w", err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "404": // nothing matches from that seq
			return events, 0, nil
		case "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			if pending > 0 && len(events) > 0 {
				next = events[len(events)-1].Seq + 1
			}
			return events, next, nil
		default:
			return nil, 0, errors.New("direct get: " + m.Header.Get("Status") + " " + m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(nats.JSSequence), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("direct get: bad sequence header: %w", err)
		}
		events = append(events, eventFromMsg(l.cfg.SubjectPrefix, m.Header.Get(nats.JSSubject), seq, m.Header, m.Data))
	}
}

// readMaxBytes bounds one read so its JSON reply stays under max_payload
// (the last event may overshoot the bound by its own size).
func (l *eventLog) readMaxBytes() int {
	return int(maxPayload(l.cfg))/2 - l.cfg.MaxEventBytes
}
