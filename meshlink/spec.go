package meshlink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
)

// Resource kinds.
const (
	KindExport = "Export"
	KindLink   = "Link"
)

// On-error policies of a link.
const (
	OnErrorSkip = "skip" // record the event in the link's dead-letter list and go on (default)
	OnErrorStop = "stop" // stop the link at the failing event
)

// Start positions of a link with no checkpoint yet.
const (
	StartBeginning = "beginning"
	StartNew       = "new"
)

var (
	validName  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	validField = regexp.MustCompile(`^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$`)
)

// Export is the owner's grant: which of its events leave the node, to which
// peers, and which data fields are removed first.
type Export struct {
	Kind        string   `json:"kind"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	To          []string `json:"to"`
	Aggregates  []string `json:"aggregates"`
	Types       []string `json:"types,omitempty"`
	Redact      []string `json:"redact,omitempty"`
}

// Link is the recipient's import: where from, which export, and how each
// event becomes an event of the recipient's own model.
type Link struct {
	Kind        string    `json:"kind"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Peer        string    `json:"peer"`
	URL         string    `json:"url"`
	Export      string    `json:"export"`
	Transform   Transform `json:"transform,omitempty"`
	Start       Start     `json:"start,omitempty"`
	OnError     string    `json:"on_error,omitempty"`
}

// Transform holds the expressions that turn an imported event into the
// recipient's event. Each is optional: filter defaults to true, the others
// keep the event's own type, aggregate, id and data.
type Transform struct {
	Filter    string `json:"filter,omitempty"`
	Type      string `json:"type,omitempty"`
	Aggregate string `json:"aggregate,omitempty"`
	ID        string `json:"id,omitempty"`
	Data      string `json:"data,omitempty"`
}

// Start is where a new link begins: "beginning" (default), "new" (only
// events exported from now on) or an origin seq (the owner's events from
// that seq on). In YAML it is a word or a number.
type Start struct {
	Policy string // beginning, new, or "" with Seq set
	Seq    uint64
}

// UnmarshalJSON accepts "beginning", "new" or a positive number.
func (s *Start) UnmarshalJSON(b []byte) error {
	var word string
	if err := json.Unmarshal(b, &word); err == nil {
		if n, err := strconv.ParseUint(word, 10, 64); err == nil && n > 0 {
			*s = Start{Seq: n}
			return nil
		}
		if word != StartBeginning && word != StartNew {
			return fmt.Errorf("start %q: want %s, %s or a seq", word, StartBeginning, StartNew)
		}
		*s = Start{Policy: word}
		return nil
	}
	var n uint64
	if err := json.Unmarshal(b, &n); err != nil || n == 0 {
		return fmt.Errorf("start %s: want %s, %s or a seq >= 1", b, StartBeginning, StartNew)
	}
	*s = Start{Seq: n}
	return nil
}

// MarshalJSON writes the word or the number.
func (s Start) MarshalJSON() ([]byte, error) {
	if s.Seq > 0 {
		return json.Marshal(s.Seq)
	}
	if s.Policy == "" {
		return json.Marshal(StartBeginning)
	}
	return json.Marshal(s.Policy)
}

// String is the start position as written in the resource.
func (s Start) String() string {
	b, _ := s.MarshalJSON()
	return strings.Trim(string(b), `"`)
}

// DecodeExport reads one Export document strictly and validates it.
func DecodeExport(doc []byte) (*Export, error) {
	var e Export
	root, err := schemas.DecodeStrictTree(doc, &e, "export")
	if err != nil {
		return nil, err
	}
	return &e, e.validate(root)
}

// DecodeLink reads one Link document strictly, validates it and compiles
// its transform.
func DecodeLink(doc []byte) (*Link, error) {
	var l Link
	root, err := schemas.DecodeStrictTree(doc, &l, "link")
	if err != nil {
		return nil, err
	}
	return &l, l.validate(root)
}

type fieldErrors struct {
	errs []error
}

// join returns the errors with the YAML line of each field filled in
// (before they are joined: a joined error's message is fixed).
func (f *fieldErrors) join(root *yaml.Node) error {
	for _, e := range f.errs {
		var fe *projection.FieldError
		if root != nil && errors.As(e, &fe) && fe.Line == 0 {
			fe.Line = projection.LineOf(root, fe.Path)
		}
	}
	return errors.Join(f.errs...)
}

func (f *fieldErrors) add(path, format string, args ...any) {
	f.errs = append(f.errs, &projection.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (f *fieldErrors) tokens(path string, list []string, required bool) {
	if required && len(list) == 0 {
		f.add(path, "at least one is required")
	}
	seen := map[string]bool{}
	for _, t := range list {
		if !schemas.ValidToken(t) {
			f.add(path, "%q must be one NATS token: no '.', '*', '>' or whitespace", t)
		}
		if seen[t] {
			f.add(path, "%q is listed twice", t)
		}
		seen[t] = true
	}
}

// Validate checks every field.
func (e *Export) Validate() error { return e.validate(nil) }

func (e *Export) validate(root *yaml.Node) error {
	var f fieldErrors
	if e.Kind != KindExport {
		f.add("kind", "got %q, want %s", e.Kind, KindExport)
	}
	if !validName.MatchString(e.Name) {
		f.add("name", "%q: use letters, digits, '-' and '_'", e.Name)
	}
	if len(e.To) == 0 {
		f.add("to", "name at least one peer node allowed to import this export")
	}
	for _, p := range e.To {
		if !validName.MatchString(p) {
			f.add("to", "peer %q: a node name uses letters, digits, '-' and '_'", p)
		}
	}
	f.tokens("aggregates", e.Aggregates, true)
	f.tokens("types", e.Types, false)
	for _, r := range e.Redact {
		if !validField.MatchString(r) {
			f.add("redact", "%q: want a field path such as card_number or customer.email", r)
		}
	}
	if len(f.errs) > 0 {
		return fmt.Errorf("export %q: %w", e.Name, f.join(root))
	}
	return nil
}

// Grants reports whether the export lets peer import it.
func (e *Export) Grants(peer string) bool {
	for _, p := range e.To {
		if p == peer {
			return true
		}
	}
	return false
}

// Selects reports whether an event of this aggregate and type leaves the node.
func (e *Export) Selects(aggregate, typ string) bool {
	ok := false
	for _, a := range e.Aggregates {
		ok = ok || a == aggregate
	}
	if !ok || len(e.Types) == 0 {
		return ok
	}
	for _, t := range e.Types {
		if t == typ {
			return true
		}
	}
	return false
}

// Equal reports whether o defines the same export.
func (e *Export) Equal(o *Export) bool { return sameJSON(e, o) }

// Validate checks every field and compiles the transform.
func (l *Link) Validate() error { return l.validate(nil) }

func (l *Link) validate(root *yaml.Node) error {
	var f fieldErrors
	if l.Kind != KindLink {
		f.add("kind", "got %q, want %s", l.Kind, KindLink)
	}
	if !validName.MatchString(l.Name) {
		f.add("name", "%q: use letters, digits, '-' and '_'", l.Name)
	}
	if !validName.MatchString(l.Peer) {
		f.add("peer", "%q: the owner's node name (letters, digits, '-' and '_')", l.Peer)
	}
	if !validName.MatchString(l.Export) {
		f.add("export", "%q: the name of an export of the peer", l.Export)
	}
	checkLinkURL(&f, l.URL)
	switch l.OnError {
	case "", OnErrorSkip, OnErrorStop:
	default:
		f.add("on_error", "%q: want %s or %s", l.OnError, OnErrorSkip, OnErrorStop)
	}
	if _, err := Compile(l.Transform); err != nil {
		f.errs = append(f.errs, err.(interface{ Unwrap() []error }).Unwrap()...)
	}
	if len(f.errs) > 0 {
		return fmt.Errorf("link %q: %w", l.Name, f.join(root))
	}
	return nil
}

// OnErrorPolicy is the effective on_error policy.
func (l *Link) OnErrorPolicy() string {
	if l.OnError == "" {
		return OnErrorSkip
	}
	return l.OnError
}

// Equal reports whether o defines the same link.
func (l *Link) Equal(o *Link) bool { return sameJSON(l, o) }

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// checkLinkURL checks a link's url: the peer's leafnode address, or, for a
// peer that is a cluster, each server's, separated by commas (the link
// fails over between them), all with one scheme.
func checkLinkURL(f *fieldErrors, list string) {
	scheme := ""
	for _, s := range strings.Split(list, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" || (u.Scheme != "nats-leaf" && u.Scheme != "nats" && u.Scheme != "tls") {
			f.add("url", "%q: want the peer's leafnode address, such as nats-leaf://127.0.0.1:7422 (a cluster's: each server's, separated by commas)", s)
			return
		}
		if u.User != nil {
			f.add("url", "credentials do not belong in a resource: put the peer's secret under peers in the node config")
			return
		}
		if scheme != "" && (u.Scheme == "tls") != (scheme == "tls") {
			f.add("url", "%q: every address of one peer uses TLS (tls://) or none does", list)
			return
		}
		scheme = u.Scheme
	}
}
