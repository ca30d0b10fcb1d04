package node

import (
	"encoding/json"
	"maps"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/projection"
)

// Catalog is the node's self-description, the reply of dm.discovery: the
// discovery port of the node as a data product.
type Catalog struct {
	Node             string            `json:"node"`
	Version          string            `json:"version"`
	Domain           string            `json:"domain"`
	Stream           string            `json:"stream"`
	SubjectPattern   string            `json:"subject_pattern"`
	RequireContracts bool              `json:"require_contracts"`
	EventTypes       []CatalogEntry    `json:"event_types"`
	Projections      []ProjectionEntry `json:"projections"`
}

// ProjectionEntry describes one projection version: its query port.
type ProjectionEntry struct {
	Name        string                          `json:"name"`
	Version     int                             `json:"version"`
	Active      bool                            `json:"active"`
	Description string                          `json:"description,omitempty"`
	Subject     string                          `json:"subject"`
	Source      projection.Source               `json:"source"`
	Indexes     map[string]projection.IndexSpec `json:"indexes,omitempty"`
	History     bool                            `json:"history"`
	Changes     string                          `json:"changes,omitempty"`
	Document    json.RawMessage                 `json:"document,omitempty"`
}

// CatalogEntry describes one event type by its latest contract.
type CatalogEntry struct {
	Aggregate   string          `json:"aggregate"`
	Type        string          `json:"type"`
	Version     int             `json:"version"`
	Description string          `json:"description,omitempty"`
	Owner       string          `json:"owner,omitempty"`
	DataSchema  string          `json:"dataschema"`
	Subject     string          `json:"subject"`
	Schema      json.RawMessage `json:"schema"`
}

// Catalog returns what dm.discovery answers.
func (n *Node) Catalog() Catalog {
	c := Catalog{
		Node:             n.cfg.Name,
		Version:          Version,
		Domain:           n.cfg.Name,
		Stream:           n.cfg.StreamName,
		SubjectPattern:   n.cfg.SubjectPrefix + ".<aggregate>.<id>.<type>",
		RequireContracts: n.cfg.RequireContracts,
		EventTypes:       []CatalogEntry{},
	}
	for _, ct := range n.registry.latest() {
		c.EventTypes = append(c.EventTypes, CatalogEntry{
			Aggregate:   ct.Aggregate,
			Type:        ct.Name,
			Version:     ct.Version,
			Description: ct.Description,
			Owner:       ct.Owner,
			DataSchema:  ct.SchemaURI(),
			Subject:     n.cfg.SubjectPrefix + "." + ct.Aggregate + ".*." + ct.Name,
			Schema:      ct.Schema,
		})
	}
	n.projections.mu.RLock()
	active := maps.Clone(n.projections.active)
	n.projections.mu.RUnlock()
	c.Projections = []ProjectionEntry{}
	for _, s := range n.projections.specs() {
		e := ProjectionEntry{
			Name: s.Name, Version: s.Version, Active: active[s.Name] == s.Version, Description: s.Description,
			Subject: SubjectQuery + "." + s.Name + ".v" + strconv.Itoa(s.Version), Source: s.Source,
			Indexes: s.Indexes, History: s.History, Document: s.Document,
		}
		if e.Active {
			e.Subject = SubjectQuery + "." + s.Name
		}
		if s.Changes {
			e.Changes = SubjectChanges + "." + s.Name + ".>"
		}
		c.Projections = append(c.Projections, e)
	}
	return c
}

func (n *Node) handleDiscovery(req micro.Request) {
	_ = req.RespondJSON(n.Catalog())
}
