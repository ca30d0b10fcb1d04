package node

import (
	"encoding/json"
	"maps"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/meshlink"
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
	// LeafURL is where peers link to this node's exports ("" if off).
	LeafURL string            `json:"leaf_url,omitempty"`
	Exports []meshlink.Export `json:"exports"`
	Links   []meshlink.Link   `json:"links"`
	// Mesh holds the linked peers' catalogs, as their exports show them;
	// only when asked for ({"mesh": true}).
	Mesh []PeerCatalog `json:"mesh,omitempty"`
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
	c.LeafURL = n.LeafURL()
	c.Exports, c.Links = n.mesh.specs()
	return c
}

// MeshCatalog asks every linked peer for what its exports show this node.
func (n *Node) MeshCatalog() []PeerCatalog { return n.mesh.meshCatalog() }

func (n *Node) handleDiscovery(req micro.Request) {
	var body struct {
		Mesh bool `json:"mesh"`
	}
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &body); err != nil {
			replyError(req, errBadRequest(`the body is optional; if given, want {"mesh": true|false}: %v`, err))
			return
		}
	}
	c := n.Catalog()
	if body.Mesh {
		c.Mesh = n.MeshCatalog()
	}
	respondJSON(req, c)
}
