package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/datamesh/datamesh/projection/expression"
	"github.com/datamesh/datamesh/schemas"
)

// KindProjection is the kind of a projection resource.
const KindProjection = "Projection"

// On-error policies.
const (
	OnErrorStop = "stop" // stop the projection at the failing event
	OnErrorSkip = "skip" // record the event in the dead-letter list and go on
)

// Spec is the Projection resource: which events feed a read model and how
// each one changes its document.
type Spec struct {
	APIVersion  string               `json:"apiVersion,omitempty"`
	Kind        string               `json:"kind"`
	Name        string               `json:"name"`
	Version     int                  `json:"version"`
	Description string               `json:"description,omitempty"`
	Source      Source               `json:"source"`
	Key         string               `json:"key"`
	Handlers    map[string]string    `json:"handlers"`
	Indexes     map[string]IndexSpec `json:"indexes,omitempty"`
	History     HistorySpec          `json:"history,omitzero"`
	Changes     bool                 `json:"changes,omitempty"`
	OnError     string               `json:"on_error,omitempty"`
	// Promote is "auto" to make this version active once it is live, or
	// empty (manual: `datamesh projection promote`).
	Promote string `json:"promote,omitempty"`
	// Document optionally describes the document shape (JSON Schema), for the catalog.
	Document json.RawMessage `json:"document,omitempty"`
}

// Source selects the events that feed a projection.
type Source struct {
	Aggregates []string `json:"aggregates"`
	Types      []string `json:"types"`
}

// IndexSpec is a secondary index over a document field. In YAML it is
// either the field path ("status") or {field: total, type: number}.
type IndexSpec struct {
	Field string `json:"field"`
	Type  string `json:"type,omitempty"` // string (default) or number
}

// UnmarshalJSON accepts the short form (a field path) and the long form.
func (s *IndexSpec) UnmarshalJSON(b []byte) error {
	var field string
	if err := json.Unmarshal(b, &field); err == nil {
		*s = IndexSpec{Field: field}
		return nil
	}
	type long IndexSpec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l long
	if err := dec.Decode(&l); err != nil {
		return fmt.Errorf("index: want a field path or {field, type}: %w", err)
	}
	*s = IndexSpec(l)
	return nil
}

var (
	validName  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	validField = regexp.MustCompile(`^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$`)
)

// Decode reads one Projection document strictly, validates it and compiles
// its expressions. Errors name the YAML line where they can.
func Decode(doc []byte) (*Spec, error) {
	var s Spec
	root, err := schemas.DecodeStrictTree(doc, &s, "projection")
	if err != nil {
		return nil, err
	}
	if err := s.validate(root); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks the fields and compiles every expression.
func (s *Spec) Validate() error { return s.validate(nil) }

// validate is Validate; with the YAML the spec came from, errors name lines.
func (s *Spec) validate(root *yaml.Node) error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Kind != KindProjection {
		add("kind", "got %q, want %s", s.Kind, KindProjection)
	}
	if !validName.MatchString(s.Name) {
		add("name", "%q: use letters, digits, '-' and '_'", s.Name)
	}
	if s.Version < 1 {
		add("version", "must be >= 1, got %d", s.Version)
	}
	if len(s.Source.Aggregates) == 0 {
		add("source.aggregates", "at least one aggregate is required")
	}
	for _, a := range s.Source.Aggregates {
		if !schemas.ValidToken(a) {
			add("source.aggregates", "%q is not one NATS token", a)
		}
	}
	types := map[string]bool{}
	for _, t := range s.Source.Types {
		if !schemas.ValidToken(t) {
			add("source.types", "%q is not one NATS token", t)
		}
		types[t] = true
	}
	if len(s.Source.Types) == 0 {
		add("source.types", "at least one event type is required")
	}
	if s.Promote != "" && s.Promote != "auto" && s.Promote != "manual" {
		add("promote", "got %q, want auto or manual", s.Promote)
	}
	switch s.OnError {
	case "", OnErrorStop, OnErrorSkip:
	default:
		add("on_error", "got %q, want stop or skip", s.OnError)
	}
	if len(s.Handlers) == 0 {
		add("handlers", "at least one handler is required")
	}
	for _, t := range sortedKeys(s.Handlers) {
		if !types[t] {
			add("handlers."+t, "type %s is not in source.types", t)
		}
	}
	for _, name := range sortedKeys(s.Indexes) {
		ix := s.Indexes[name]
		if !validName.MatchString(name) {
			add("indexes."+name, "index name: use letters, digits, '-' and '_'")
		}
		if !validField.MatchString(ix.Field) {
			add("indexes."+name, "field %q: want a dotted path of letters, digits and '_'", ix.Field)
		}
		if ix.Type != "" && ix.Type != "string" && ix.Type != "number" {
			add("indexes."+name, "type %q: want string or number", ix.Type)
		}
	}
	if len(errs) == 0 {
		if _, err := compileSpec(s); err != nil {
			errs = append(errs, err.(interface{ Unwrap() []error }).Unwrap()...)
		}
	}
	for _, e := range errs {
		if fe, ok := e.(*FieldError); ok && root != nil {
			fe.Line = lineOf(root, strings.Split(fe.Path, "."))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("projection %q: %w", s.Name, errors.Join(errs...))
	}
	return nil
}

// OnErrorPolicy is the effective on_error policy.
func (s *Spec) OnErrorPolicy() string {
	if s.OnError == "" {
		return OnErrorStop
	}
	return s.OnError
}

// Equal reports whether o defines the same projection.
func (s *Spec) Equal(o *Spec) bool {
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(o)
	return bytes.Equal(a, b)
}

// FieldError is a problem with one field of a resource. It is the
// expression language's compile error, so that a spec's expression errors
// and its other field errors get their YAML lines the same way.
type FieldError = expression.FieldError

// lineOf finds the line of the key at path in a YAML document.
func lineOf(n *yaml.Node, path []string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// LineOf finds the line of the key at a dotted path in a YAML document, for
// resources that report errors as FieldError.
func LineOf(n *yaml.Node, path string) int { return lineOf(n, strings.Split(path, ".")) }
