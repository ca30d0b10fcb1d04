package schemas

import "encoding/json"

// CatalogEntry describes one event type by its latest contract, as a node's
// discovery endpoint and its peers' catalogs show it.
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

// Entry is c's catalog entry; subjectPrefix is the first token of the
// log's subjects (<prefix>.<aggregate>.<id>.<type>).
func (c *Contract) Entry(subjectPrefix string) CatalogEntry {
	return CatalogEntry{
		Aggregate:   c.Aggregate,
		Type:        c.Name,
		Version:     c.Version,
		Description: c.Description,
		Owner:       c.Owner,
		DataSchema:  c.SchemaURI(),
		Subject:     subjectPrefix + "." + c.Aggregate + ".*." + c.Name,
		Schema:      c.Schema,
	}
}
