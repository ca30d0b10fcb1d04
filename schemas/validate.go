package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Validator is a compiled contract, built once per contract version and
// safe for concurrent use.
type Validator struct {
	contract *Contract
	schema   *jsonschema.Schema
}

// Violation is one rule the data breaks.
type Violation struct {
	// Path is the JSON pointer of the offending value, "" for the root.
	Path string `json:"path"`
	// Message says what is wrong, e.g. "missing property 'customer'".
	Message string `json:"message"`
}

var printer = message.NewPrinter(language.English)

func compileSchema(c *Contract) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.Schema))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	url := c.SchemaURI()
	if err := comp.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := comp.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema does not compile: %w", err)
	}
	return sch, nil
}

// Compile validates c and compiles its schema.
func Compile(c *Contract) (*Validator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	sch, err := compileSchema(c)
	if err != nil {
		return nil, err
	}
	return &Validator{contract: c, schema: sch}, nil
}

// Contract returns the contract v was compiled from.
func (v *Validator) Contract() *Contract { return v.contract }

// Validate checks one event's data (JSON). It returns nil when the data is
// valid, otherwise every violation, sorted by path.
func (v *Validator) Validate(data []byte) []Violation {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
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
	collectLeaves(ve, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// collectLeaves lists the errors that have no causes: the rules actually broken.
func collectLeaves(e *jsonschema.ValidationError, out *[]Violation) {
	if len(e.Causes) == 0 {
		*out = append(*out, Violation{Path: pointer(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
		return
	}
	for _, c := range e.Causes {
		collectLeaves(c, out)
	}
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return sb.String()
}
