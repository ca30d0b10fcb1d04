package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// KindEventType is the kind of a contract resource.
const KindEventType = "EventType"

// Contract is the EventType resource: the JSON Schema that the data of one
// event type of one aggregate must satisfy, at one version.
type Contract struct {
	// APIVersion is optional, e.g. "datamesh/v1".
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind must be KindEventType.
	Kind string `json:"kind"`
	// Name is the event type, e.g. "OrderPlaced": one NATS subject token.
	Name string `json:"name"`
	// Aggregate is the aggregate the events belong to, e.g. "order": one
	// NATS subject token.
	Aggregate string `json:"aggregate"`
	// Version starts at 1; each new version must be compatible with the
	// previous one (see CheckCompatible).
	Version int `json:"version"`
	// Description says what happened when such an event is appended.
	Description string `json:"description,omitempty"`
	// Owner is who to ask about the contract, e.g. "team-orders".
	Owner string `json:"owner,omitempty"`
	// Schema is the JSON Schema of the event data. Without "$schema" it is
	// read as draft 2020-12.
	Schema json.RawMessage `json:"schema"`
}

// DecodeContract reads one YAML or JSON document strictly (an unknown field
// is an error that names it, and field names are case-sensitive) and
// validates it, schema compilation included. A document that does not
// decode is a *DecodeError with its line.
func DecodeContract(doc []byte) (*Contract, error) {
	j, err := YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	j = bytes.TrimSpace(j)
	switch {
	case bytes.Equal(j, []byte("null")):
		return nil, errors.New("decode contract: empty document")
	case len(j) == 0 || j[0] != '{':
		return nil, errors.New("decode contract: the document is not a mapping of fields")
	}
	var c Contract
	if err := DecodeStrictAs(doc, &c, "contract"); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Key is "<aggregate>.<name>", the identity shared by a contract's versions.
func (c *Contract) Key() string { return c.Aggregate + "." + c.Name }

// SchemaURI identifies this version; the node uses it as the CloudEvents
// dataschema of the events checked against it.
func (c *Contract) SchemaURI() string {
	return "urn:datamesh:schema:" + c.Aggregate + ":" + c.Name + ":" + strconv.Itoa(c.Version)
}

// Validate checks the fields and that the schema compiles. It reports every
// problem at once, each naming its field.
func (c *Contract) Validate() error {
	errs := c.checkFields()
	if c.hasSchema() {
		if _, err := compileSchema(c); err != nil {
			errs = append(errs, err)
		}
	}
	return c.fieldErrors(errs)
}

// checkFields checks everything but the schema's compilation, so that
// Compile compiles once.
func (c *Contract) checkFields() []error {
	var errs []error
	switch c.Kind {
	case KindEventType:
	case "":
		errs = append(errs, fmt.Errorf("kind is required (want %s)", KindEventType))
	default:
		errs = append(errs, fmt.Errorf("kind must be %s, got %q", KindEventType, c.Kind))
	}
	for _, f := range []struct{ field, value string }{{"name", c.Name}, {"aggregate", c.Aggregate}} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.field))
		} else if !validContractName(f.value) {
			errs = append(errs, fmt.Errorf("%s %q must be one NATS subject token (no '.', '*', '>' or whitespace)", f.field, f.value))
		}
	}
	if c.Version < 1 {
		errs = append(errs, fmt.Errorf("version must be >= 1, got %d", c.Version))
	}
	if !c.hasSchema() {
		errs = append(errs, errors.New("schema is required"))
	}
	return errs
}

func (c *Contract) hasSchema() bool {
	s := bytes.TrimSpace(c.Schema)
	return len(s) > 0 && !bytes.Equal(s, []byte("null"))
}

// fieldErrors puts errs under the contract's name, or returns nil.
func (c *Contract) fieldErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("contract %q: %w", c.Key(), joinedErrors(errs))
}

// joinedErrors is errors.Join on one line, so that a wire error stays
// readable.
type joinedErrors []error

func (e joinedErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e joinedErrors) Unwrap() []error { return e }

// ValidToken reports whether s can be one subject token: aggregates, ids
// and event types are tokens of an event's subject
// (<prefix>.<aggregate>.<id>.<type>), so none may be empty or hold '.',
// '*', '>', a space, a tab or a line break. Every package that checks such
// a name calls this one.
func ValidToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// validContractName is stricter for the names of contracts, which are
// documentation as well: no white space or control character of any kind.
func validContractName(s string) bool {
	if !ValidToken(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Equal reports whether o has the same content, comparing schemas as
// canonical JSON (key order and white space do not matter).
func (c *Contract) Equal(o *Contract) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.APIVersion != o.APIVersion || c.Kind != o.Kind || c.Name != o.Name || c.Aggregate != o.Aggregate ||
		c.Version != o.Version || c.Description != o.Description || c.Owner != o.Owner {
		return false
	}
	a, err1 := canonical(c.Schema)
	b, err2 := canonical(o.Schema)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// canonical re-encodes JSON with sorted keys and no white space. Numbers go
// through float64, so 1 and 1.0 are equal, as JSON Schema says they are.
func canonical(raw json.RawMessage) ([]byte, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
