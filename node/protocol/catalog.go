package protocol

import (
	"encoding/json"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
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

// CatalogEntry describes one event type by its latest contract.
type CatalogEntry = schemas.CatalogEntry

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
