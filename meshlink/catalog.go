package meshlink

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/schemas"
)

const (
	// subjectCatalog is what a peer asks, in the export account it reaches,
	// for this node's catalog as its exports show it.
	subjectCatalog = "mesh.catalog"
	// catalogTimeout bounds the wait for one peer's catalog.
	catalogTimeout = 2 * time.Second
)

// PeerCatalog is what one peer shows this node: the exports it grants it,
// with the contracts of their event types.
type PeerCatalog struct {
	Node    string          `json:"node"`
	Exports []ExportCatalog `json:"exports"`
	Error   string          `json:"error,omitempty"`
}

// ExportCatalog is one export as its peers see it.
type ExportCatalog struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Aggregates  []string               `json:"aggregates"`
	Types       []string               `json:"types,omitempty"`
	Redact      []string               `json:"redact,omitempty"`
	Stream      string                 `json:"stream"`
	EventTypes  []schemas.CatalogEntry `json:"event_types"`
}

// serveCatalog answers mesh.catalog in peer's export account with what the
// exports granted to peer show: never more.
func (m *Mesh) serveCatalog(peer string) error {
	nc, err := m.deps.Dialer.ConnectExport(peer, nats.Name("datamesh-mesh-catalog"))
	if err != nil {
		return fmt.Errorf("mesh catalog for %s: %w", peer, err)
	}
	if _, err := nc.Subscribe(subjectCatalog, func(msg *nats.Msg) {
		b, _ := json.Marshal(m.catalogFor(peer))
		_ = msg.Respond(b)
	}); err != nil {
		nc.Close()
		return fmt.Errorf("mesh catalog for %s: %w", peer, err)
	}
	m.mu.Lock()
	m.catalog = append(m.catalog, nc)
	m.mu.Unlock()
	return nil
}

// catalogFor is this node's catalog as the exports granted to peer show it.
func (m *Mesh) catalogFor(peer string) PeerCatalog {
	pc := PeerCatalog{Node: m.cfg.Node, Exports: []ExportCatalog{}}
	exports, _ := m.Specs()
	all := m.deps.Contracts.EventTypes()
	for _, e := range exports {
		if !e.Grants(peer) {
			continue
		}
		ec := ExportCatalog{Name: e.Name, Description: e.Description, Aggregates: e.Aggregates, Types: e.Types,
			Redact: e.Redact, Stream: exportStream(e.Name), EventTypes: []schemas.CatalogEntry{}}
		for _, t := range all {
			if e.Selects(t.Aggregate, t.Type) {
				ec.EventTypes = append(ec.EventTypes, t)
			}
		}
		pc.Exports = append(pc.Exports, ec)
	}
	return pc
}

// PeerCatalogs asks every linked peer for what its exports show this node.
// A peer that does not answer has its Error set.
func (m *Mesh) PeerCatalogs() []PeerCatalog {
	m.mu.Lock()
	peers := slices.Sorted(maps.Keys(m.remotes))
	m.mu.Unlock()
	out := []PeerCatalog{}
	for _, p := range peers {
		pc := PeerCatalog{Node: p, Exports: []ExportCatalog{}}
		if err := m.askCatalog(p, &pc); err != nil {
			pc.Error = err.Error()
		}
		out = append(out, pc)
	}
	return out
}

func (m *Mesh) askCatalog(peer string, pc *PeerCatalog) error {
	nc, err := m.deps.Dialer.ConnectPeer(peer)
	if err != nil {
		return err
	}
	defer nc.Close()
	msg, err := nc.Request(subjectCatalog, nil, catalogTimeout)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("peer %s did not answer: not connected?", peer)
		}
		return err
	}
	return json.Unmarshal(msg.Data, pc)
}
