package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// overviewPage is the Overview page. Each section is what one API request
// answered for the session's identity, or why it was refused.
type overviewPage struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// Discovery is dm.discovery: the node's name, version and what it holds.
	Discovery section `json:"discovery"`
	// Log is the event stream's state from JetStream's STREAM.INFO.
	Log section `json:"log"`
	// Rates are the API's request counters from the micro service's
	// $SRV.STATS, and their rate since the session's last overview.
	Rates       section   `json:"rates"`
	Projections section   `json:"projections"`
	Mesh        section   `json:"mesh"`
	Ready       readiness `json:"ready"`
	// Attention lists the projections and links that need a look.
	Attention []string `json:"attention"`
}

// logState is the log's figures.
type logState struct {
	Stream   string `json:"stream"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// rates are the append and query endpoints' request counts, their average
// since the service started and, from the second overview of a session
// on, their rate since the previous one.
type rates struct {
	Started    time.Time `json:"started"`
	Appends    int       `json:"appends"`
	Queries    int       `json:"queries"`
	AppendsAvg float64   `json:"appends_avg"`
	QueriesAvg float64   `json:"queries_avg"`
	// AppendsNow and QueriesNow are per second over WindowSeconds.
	AppendsNow    *float64 `json:"appends_now,omitempty"`
	QueriesNow    *float64 `json:"queries_now,omitempty"`
	WindowSeconds float64  `json:"window_seconds,omitempty"`
}

type rateSample struct {
	at               time.Time
	appends, queries int
}

// readiness is /readyz's rule applied to what the API shows the identity:
// the API answers, every active projection version is live and every
// link is connected. Known is false when the identity may not see them.
type readiness struct {
	Known    bool     `json:"known"`
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready,omitempty"`
	Note     string   `json:"note,omitempty"`
}

func (c *Console) handleOverview(w http.ResponseWriter, _ *http.Request, s *session) {
	p := overviewPage{Node: c.cfg.Node, Version: c.cfg.Version, Attention: []string{}}
	cat, err := s.catalog(false)
	p.Discovery = sectionOf(summarize(cat), err)
	stream := "EVENTS" // node.DefaultStreamName, until discovery names it
	if cat != nil {
		p.Node, p.Version, stream = cat.Node, cat.Version, cat.Stream
	}
	st, err := s.streamInfo(stream, c.cfg.Timeout)
	p.Log = sectionOf(st, err)
	rt, err := s.apiRates(c.cfg.Timeout)
	p.Rates = sectionOf(rt, err)
	ps, err := s.projections()
	p.Projections = sectionOf(ps, err)
	var ms *protocol.MeshStatus
	err = s.call(protocol.SubjectMesh, func(api *client.Client) (err error) { ms, err = api.Mesh(); return })
	p.Mesh = sectionOf(ms, err)
	p.Ready = ready(cat != nil, p.Projections.Error == nil, ps, p.Mesh.Error == nil, ms)
	p.Attention = attention(ps, ms)
	writeJSON(w, http.StatusOK, p)
}

// discoverySummary is what the overview shows of the discovery document.
type discoverySummary struct {
	Node        string `json:"node"`
	Version     string `json:"version"`
	Stream      string `json:"stream"`
	EventTypes  int    `json:"event_types"`
	Projections int    `json:"projections"`
	Exports     int    `json:"exports"`
	Links       int    `json:"links"`
}

func summarize(cat *protocol.Catalog) *discoverySummary {
	if cat == nil {
		return nil
	}
	return &discoverySummary{Node: cat.Node, Version: cat.Version, Stream: cat.Stream, EventTypes: len(cat.EventTypes),
		Projections: len(cat.Projections), Exports: len(cat.Exports), Links: len(cat.Links)}
}

// streamInfo asks JetStream for the log's state: granted to admins, to
// services with a consume grant and to anonymous clients.
func (s *session) streamInfo(stream string, timeout time.Duration) (*logState, error) {
	subject := "$JS.API.STREAM.INFO." + stream
	var reply struct {
		State struct {
			Messages uint64 `json:"messages"`
			Bytes    uint64 `json:"bytes"`
			FirstSeq uint64 `json:"first_seq"`
			LastSeq  uint64 `json:"last_seq"`
		} `json:"state"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	err := s.call(subject, func(*client.Client) error { return s.request(subject, timeout, &reply) })
	if err != nil {
		return nil, err
	}
	if reply.Error != nil {
		return nil, fmt.Errorf("%s: %s (%d)", subject, reply.Error.Description, reply.Error.Code)
	}
	st := reply.State
	return &logState{Stream: stream, Messages: st.Messages, Bytes: st.Bytes, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq}, nil
}

// rates asks the API's micro service for its counters ($SRV.> is open to
// every service) and turns them into rates.
func (s *session) apiRates(timeout time.Duration) (*rates, error) {
	subject := "$SRV.STATS." + protocol.ServiceName
	var st micro.Stats
	if err := s.call(subject, func(*client.Client) error { return s.request(subject, timeout, &st) }); err != nil {
		return nil, err
	}
	r := &rates{Started: st.Started}
	for _, e := range st.Endpoints {
		switch e.Name {
		case "append":
			r.Appends = e.NumRequests
		case "query":
			r.Queries = e.NumRequests
		}
	}
	now := time.Now()
	if up := now.Sub(st.Started).Seconds(); up > 0 {
		r.AppendsAvg, r.QueriesAvg = float64(r.Appends)/up, float64(r.Queries)/up
	}
	s.mu.Lock()
	prev := s.sample
	s.sample = &rateSample{at: now, appends: r.Appends, queries: r.Queries}
	s.mu.Unlock()
	if prev != nil && now.Sub(prev.at) > 100*time.Millisecond && r.Appends >= prev.appends {
		win := now.Sub(prev.at).Seconds()
		a, q := float64(r.Appends-prev.appends)/win, float64(r.Queries-prev.queries)/win
		r.AppendsNow, r.QueriesNow, r.WindowSeconds = &a, &q, win
	}
	return r, nil
}

// request is one raw request on the session's connection, decoded into out.
func (s *session) request(subject string, timeout time.Duration, out any) error {
	msg, err := s.nc.Request(subject, nil, timeout)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	return nil
}

func ready(api, psKnown bool, ps []projection.Status, msKnown bool, ms *protocol.MeshStatus) readiness {
	r := readiness{Known: api && psKnown && msKnown}
	if !api {
		r.NotReady = append(r.NotReady, "api: discovery did not answer")
		r.Known = true
	}
	for _, st := range ps {
		if st.Active && st.State != projection.StateLive {
			r.NotReady = append(r.NotReady, fmt.Sprintf("projection %s v%d: %s (applied %d of %d)", st.Name, st.Version, st.State, st.Applied, st.Head))
		}
	}
	if ms != nil {
		for _, l := range ms.Links {
			switch {
			case l.State == meshlink.LinkFailed:
				r.NotReady = append(r.NotReady, fmt.Sprintf("link %s: failed: %s", l.Name, l.LastError))
			case !l.Connected:
				r.NotReady = append(r.NotReady, fmt.Sprintf("link %s: peer %s not connected", l.Name, l.Peer))
			}
		}
	}
	r.Ready = len(r.NotReady) == 0
	if !r.Known {
		r.Note = "this identity may not read the projections' and links' status (admin requests): /readyz on this port answers"
	}
	return r
}

// attention lists what an operator should look at: versions not live or
// with errors or dead letters, links not importing or with dead letters,
// exports with errors.
func attention(ps []projection.Status, ms *protocol.MeshStatus) []string {
	out := []string{}
	for _, st := range ps {
		name := fmt.Sprintf("projection %s v%d", st.Name, st.Version)
		switch {
		case st.LastError != "":
			out = append(out, fmt.Sprintf("%s: %s: %s", name, st.State, st.LastError))
		case st.State != projection.StateLive:
			out = append(out, fmt.Sprintf("%s: %s (%.0f%%)", name, st.State, 100*st.Progress))
		}
		if st.DeadLetters > 0 {
			out = append(out, fmt.Sprintf("%s: %d dead letters", name, st.DeadLetters))
		}
	}
	if ms == nil {
		return out
	}
	for _, l := range ms.Links {
		switch {
		case l.State == meshlink.LinkFailed || l.LastError != "":
			out = append(out, fmt.Sprintf("link %s: %s: %s", l.Name, l.State, l.LastError))
		case !l.Connected:
			out = append(out, fmt.Sprintf("link %s: peer %s not connected", l.Name, l.Peer))
		}
		if l.DeadLetters > 0 {
			out = append(out, fmt.Sprintf("link %s: %d dead letters", l.Name, l.DeadLetters))
		}
	}
	for _, e := range ms.Exports {
		if e.LastError != "" {
			out = append(out, fmt.Sprintf("export %s to %s: %s", e.Name, e.Peer, e.LastError))
		}
	}
	return out
}
