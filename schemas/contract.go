package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// KindEventType is the kind of a contract resource.
const KindEventType = "EventType"

// Contract is the EventType resource: the schema of one event type of one
// aggregate, at one version.
type Contract struct {
	APIVersion  string          `json:"apiVersion,omitempty"`
	Kind        string          `json:"kind"`
	Name        string          `json:"name"`
	Aggregate   string          `json:"aggregate"`
	Version     int             `json:"version"`
	Description string          `json:"description,omitempty"`
	Owner       string          `json:"owner,omitempty"`
	Schema      json.RawMessage `json:"schema"`
}

// DecodeContract reads one YAML or JSON document strictly (an unknown field
// is an error that names it) and validates it.
func DecodeContract(doc []byte) (*Contract, error) {
	var c Contract
	if err := DecodeStrict(doc, &c); err != nil {
		return nil, fmt.Errorf("decode contract: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Key is "<aggregate>.<name>", the identity shared by a contract's versions.
func (c *Contract) Key() string { return c.Aggregate + "." + c.Name }

// SchemaURI identifies this version; the node uses it as the CloudEvents
// dataschema of events checked against it.
func (c *Contract) SchemaURI() string {
	return "urn:datamesh:schema:" + c.Aggregate + ":" + c.Name + ":" + strconv.Itoa(c.Version)
}

// validToken reports whether s is one NATS subject token.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// Validate checks the fields and that the schema compiles. Every problem is
// reported, each naming its field.
func (c *Contract) Validate() error {
	var errs []error
	if c.Kind != KindEventType {
		errs = append(errs, fmt.Errorf("kind %q: want %s", c.Kind, KindEventType))
	}
	if !validToken(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: must be one NATS token (no '.', '*', '>' or whitespace)", c.Name))
	}
	if !validToken(c.Aggregate) {
		errs = append(errs, fmt.Errorf("aggregate %q: must be one NATS token (no '.', '*', '>' or whitespace)", c.Aggregate))
	}
	if c.Version < 1 {
		errs = append(errs, fmt.Errorf("version must be >= 1, got %d", c.Version))
	}
	if len(bytes.TrimSpace(c.Schema)) == 0 || string(bytes.TrimSpace(c.Schema)) == "null" {
		errs = append(errs, errors.New("schema is required"))
	} else if _, err := compileSchema(c); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("contract %q: %w", c.Key(), errors.Join(errs...))
	}
	return nil
}

// Equal reports whether o has the same content, comparing schemas as
// canonical JSON (key order and white space do not matter).
func (c *Contract) Equal(o *Contract) bool {
	if c.Kind != o.Kind || c.Name != o.Name || c.Aggregate != o.Aggregate || c.Version != o.Version ||
		c.Description != o.Description || c.Owner != o.Owner {
		return false
	}
	a, err1 := canonical(c.Schema)
	b, err2 := canonical(o.Schema)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// canonical re-encodes JSON with sorted keys.
func canonical(raw json.RawMessage) ([]byte, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
