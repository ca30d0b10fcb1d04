package node

import (
	"encoding/json"

	"github.com/nats-io/nats.go/micro"
)

// Catalog is the node's self-description, the reply of dm.discovery: the
// discovery port of the node as a data product.
type Catalog struct {
	Node             string         `json:"node"`
	Version          string         `json:"version"`
	Domain           string         `json:"domain"`
	Stream           string         `json:"stream"`
	SubjectPattern   string         `json:"subject_pattern"`
	RequireContracts bool           `json:"require_contracts"`
	EventTypes       []CatalogEntry `json:"event_types"`
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
	return c
}

func (n *Node) handleDiscovery(req micro.Request) {
	_ = req.RespondJSON(n.Catalog())
}
