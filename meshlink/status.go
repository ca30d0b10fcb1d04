package meshlink

import (
	"context"
	"errors"
	"sort"
	"time"
)

// Link states.
const (
	LinkConnecting = "connecting" // waiting for the peer or its export
	LinkImporting  = "importing"  // reading the export
	LinkFailed     = "failed"     // stopped by a transform error (on_error: stop)
	// LinkStandby: on a clustered node, another server runs the link.
	LinkStandby = "standby"
)

// statusTimeout bounds what one export's status reads from the server.
const statusTimeout = time.Second

// Status is every link's and export's status (dm.admin.mesh).
type Status struct {
	// Server is, on a cluster, the server that runs the mesh and answers.
	Server  string         `json:"server,omitempty"`
	Links   []LinkStatus   `json:"links"`
	Exports []ExportStatus `json:"exports"`
}

// LinkStatus is one link in dm.admin.mesh.
type LinkStatus struct {
	Name      string `json:"name"`
	Peer      string `json:"peer"`
	Export    string `json:"export"`
	URL       string `json:"url"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// ExportSeq is the last position read in the peer's export stream;
	// ExportHead is that stream's last seq.
	ExportSeq  uint64 `json:"export_seq"`
	ExportHead uint64 `json:"export_head"`
	// OriginSeq is the owner's seq of the last event imported (or
	// skipped); OwnerHeadSeq is the owner's seq of its last exported event.
	OriginSeq    uint64 `json:"origin_seq"`
	OwnerHeadSeq uint64 `json:"owner_head_seq"`
	// LagEvents is how many exported events are not imported yet;
	// LagSeconds how long ago the oldest of them was exported.
	LagEvents   uint64  `json:"lag_events"`
	LagSeconds  float64 `json:"lag_seconds"`
	Rate        float64 `json:"rate"`
	Imported    uint64  `json:"imported"`
	Filtered    uint64  `json:"filtered"`
	DeadLetters uint64  `json:"dead_letters"`
	LastError   string  `json:"last_error,omitempty"`
	FailedAt    uint64  `json:"failed_at,omitempty"`
	// Attempts counts the failed attempts in a row while the link retries
	// (state connecting, the reason in LastError).
	Attempts int `json:"attempts,omitempty"`
}

// ExportStatus is one export to one peer, in dm.admin.mesh.
type ExportStatus struct {
	Name      string `json:"name"`
	Peer      string `json:"peer"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// ExportedSeq is the seq (in this node's log) of the last event exported.
	ExportedSeq uint64 `json:"exported_seq"`
	// Head is this node's log head.
	Head uint64 `json:"head"`
	// StreamSeq is the export stream's last seq; ReadSeq is how far the
	// peer has read it (its consumers' delivered seq).
	StreamSeq uint64 `json:"stream_seq"`
	ReadSeq   uint64 `json:"read_seq"`
	LastError string `json:"last_error,omitempty"`
	// Attempts counts the failed attempts in a row while retrying.
	Attempts int `json:"attempts,omitempty"`
}

// Status returns every link's and export's status, by name (and peer).
func (m *Mesh) Status() Status {
	m.mu.Lock()
	links := make([]*linkWorker, 0, len(m.links))
	for _, l := range m.links {
		links = append(links, l)
	}
	exports := make([]*exportRunner, 0, len(m.exports))
	for _, e := range m.exports {
		exports = append(exports, e)
	}
	m.mu.Unlock()
	st := Status{Links: []LinkStatus{}, Exports: []ExportStatus{}}
	if m.cfg.Clustered {
		st.Server = m.cfg.Server
	}
	for _, l := range links {
		st.Links = append(st.Links, l.status())
	}
	for _, r := range exports {
		for _, w := range r.workers {
			st.Exports = append(st.Exports, w.status())
		}
	}
	sort.Slice(st.Links, func(i, j int) bool { return st.Links[i].Name < st.Links[j].Name })
	sort.Slice(st.Exports, func(i, j int) bool {
		if st.Exports[i].Name != st.Exports[j].Name {
			return st.Exports[i].Name < st.Exports[j].Name
		}
		return st.Exports[i].Peer < st.Exports[j].Peer
	})
	return st
}

func (w *linkWorker) status() LinkStatus {
	w.mu.Lock()
	now := time.Now()
	st := LinkStatus{
		Name: w.spec.Name, Peer: w.spec.Peer, Export: w.spec.Export, URL: w.spec.URL, State: w.state,
		ExportSeq: w.cp.ExportSeq, ExportHead: max(w.exportHead, w.cp.ExportSeq),
		OriginSeq: w.cp.OriginSeq, OwnerHeadSeq: max(w.ownerHead, w.cp.OriginSeq),
		LagSeconds: w.lagSeconds, Rate: w.rate.PerSecond(now),
		Imported: w.imported, Filtered: w.filtered, DeadLetters: w.dead, LastError: w.lastError, FailedAt: w.failedAt,
		Attempts: w.attempts,
	}
	w.mu.Unlock()
	st.LagEvents = st.ExportHead - st.ExportSeq
	st.Connected = w.m.deps.Leafnodes.PeerConnected(w.spec.Peer)
	return st
}

func (w *exportWorker) status() ExportStatus {
	w.mu.Lock()
	st := ExportStatus{Name: w.spec.Name, Peer: w.peer, State: w.state, ExportedSeq: w.exported,
		StreamSeq: w.streamSeq, LastError: w.lastError, Attempts: w.attempts}
	stream := w.stream
	w.mu.Unlock()
	st.Connected = w.m.deps.Leafnodes.ExportConnected(w.peer)
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st.Head, _ = w.m.deps.Log.Head(ctx)
	if stream != nil {
		lister := stream.ListConsumers(ctx)
		for ci := range lister.Info() {
			st.ReadSeq = max(st.ReadSeq, ci.Delivered.Stream)
		}
		if err := lister.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			st.LastError = err.Error()
		}
	}
	return st
}
