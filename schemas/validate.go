package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Validator is a compiled contract, built once per contract version and
// safe for concurrent use.
type Validator struct {
	contract *Contract
	schema   *jsonschema.Schema
}

// Violation is one rule that event data breaks.
type Violation struct {
	// Path is the JSON pointer of the offending value, "" for the root,
	// e.g. "/items/0/price".
	Path string `json:"path"`
	// Message is the validator's, e.g. "missing property 'customer'".
	Message string `json:"message"`
}

var printer = message.NewPrinter(language.English)

// Compile checks c and compiles its schema. The validator keeps its own
// copy of c, so changing c afterwards does not change what it enforces.
func Compile(c *Contract) (*Validator, error) {
	if err := c.fieldErrors(c.checkFields()); err != nil {
		return nil, err
	}
	sch, err := compileSchema(c)
	if err != nil {
		return nil, c.fieldErrors([]error{err})
	}
	cp := *c
	cp.Schema = bytes.Clone(c.Schema)
	return &Validator{contract: &cp, schema: sch}, nil
}

// resourceURL names every schema while it compiles. It is not SchemaURI,
// whose names may hold characters that a URL gives a meaning to, like '#'.
const resourceURL = "urn:datamesh:contract"

// compileSchema compiles c's schema on its own: nothing outside the contract
// is loaded, since contracts come over the network and a "$ref" to a file or
// URL would let them read the node's disk or reach other hosts.
func compileSchema(c *Contract) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.Schema))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.UseLoader(noLoader{})
	// Draft 2020-12 makes "format" an annotation only; contracts assert it,
	// so that "format: email" means what its author expects.
	comp.AssertFormat()
	if err := comp.AddResource(resourceURL, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := comp.Compile(resourceURL)
	if err != nil {
		return nil, fmt.Errorf("schema does not compile: %w", metaschemaError(err))
	}
	return sch, nil
}

// metaschemaError says where a schema breaks its metaschema on one line,
// in the words of Validate: the library's own message is an indented tree.
func metaschemaError(err error) error {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if !errors.As(err, &sve) || !errors.As(sve.Err, &ve) {
		return err
	}
	var vs []Violation
	collect(ve, &vs)
	// The metaschema's errors on different keywords come in map order: sort
	// them by path, so the message is the same every time.
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Path < vs[j].Path })
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = fmt.Sprintf("at %q: %s", v.Path, v.Message)
	}
	return &wrapped{msg: strings.Join(msgs, "; "), err: err}
}

// wrapped gives err another message.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// noLoader refuses every external schema; the metaschemas of the drafts are
// built into the library and do not go through it.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is outside the contract: a contract's schema must be self-contained", url)
}

// Contract returns the contract v was compiled from. Callers must not
// modify it.
func (v *Validator) Contract() *Contract { return v.contract }

// Validate checks one event's data (JSON). It returns nil when the data is
// valid, otherwise every violation, sorted by path.
//
// Every leaf error is listed, not only the first. Of the errors that group
// others, "anyOf", "oneOf" and the like are kept too, since their causes are
// alternatives that only make sense under them; pure wrappers ("$ref",
// "allOf", the root) are left out.
func (v *Validator) Validate(data []byte) []Violation {
	inst, err := decode(data)
	if err != nil {
		return []Violation{{Path: "", Message: "data is not JSON: " + err.Error()}}
	}
	err = v.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Violation{{Path: "", Message: err.Error()}}
	}
	var out []Violation
	collect(ve, &out)
	// Stable: at one path, a group stays before its causes.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// collect lists e's violations: every leaf, and every group that is more
// than a wrapper. It walks the error tree rather than the library's basic
// output, which in v6.0.3 replaces the message of the only error under a
// "$ref" with "validation failed".
func collect(e *jsonschema.ValidationError, out *[]Violation) {
	if len(e.Causes) == 0 || !wrapper(e.ErrorKind) {
		*out = append(*out, Violation{Path: pointer(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
	}
	for _, c := range e.Causes {
		collect(c, out)
	}
}

// pointer joins instance location tokens into a JSON pointer.
func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escape(t))
	}
	return sb.String()
}

// wrapper reports whether an error only groups others that say what is
// wrong.
func wrapper(k jsonschema.ErrorKind) bool {
	switch k.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		return true
	}
	return false
}

// ViolationError is event data that does not satisfy its contract: every
// failed rule, with its JSON pointer.
type ViolationError struct {
	Contract   string // the contract's Key
	Violations []Violation
}

func (e *ViolationError) Error() string {
	return fmt.Sprintf("data does not satisfy contract %s (%d violations): %s", e.Contract, len(e.Violations), e.Violations[0].Message)
}

// Check validates data and returns a *ViolationError if it breaks a rule.
func (v *Validator) Check(data []byte) error {
	if vs := v.Validate(data); len(vs) > 0 {
		return &ViolationError{Contract: v.contract.Key(), Violations: vs}
	}
	return nil
}
