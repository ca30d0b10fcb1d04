package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DecodeError is a document that does not decode, with where: the file
// (when the caller knows it, see InFile), the line and the column.
type DecodeError struct {
	File   string
	Line   int // 1-based; 0 if unknown
	Column int // 1-based; 0 if unknown
	Msg    string
}

// Error is "file:line:column: msg" (as compilers write it), or
// "line L, column C: msg" without a file.
func (e *DecodeError) Error() string {
	pos := ""
	if e.Line > 0 {
		pos = strconv.Itoa(e.Line)
		if e.Column > 0 {
			pos += ":" + strconv.Itoa(e.Column)
		}
	}
	switch {
	case e.File != "" && pos != "":
		return e.File + ":" + pos + ": " + e.Msg
	case e.File != "":
		return e.File + ": " + e.Msg
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// InFile names file in err if err is a *DecodeError, and returns err.
func InFile(err error, file string) error {
	var de *DecodeError
	if errors.As(err, &de) && de.File == "" {
		de.File = file
	}
	return err
}

// DecodeStrict decodes one YAML (1.2) or JSON document into v through its
// JSON tags, refusing unknown fields. YAML 1.2 matters for schemas: under
// YAML 1.1 rules a property named y or n would become a boolean key.
//
// It lives here because contracts were its first user; node and projection
// decode their resources and configuration with it too.
func DecodeStrict(doc []byte, v any) error { return DecodeStrictAs(doc, v, "") }

// DecodeStrictAs is DecodeStrict for a document that is a what ("config",
// "projection"), which errors name. Field names are matched exactly, and
// an error is a *DecodeError with the line and column of the field it is
// about: `line 3, column 1: unknown field "listn" in config (did you mean
// "listen"?)`.
func DecodeStrictAs(doc []byte, v any, what string) error {
	_, err := DecodeStrictTree(doc, v, what)
	return err
}

// DecodeStrictTree is DecodeStrictAs, and returns the parsed document too,
// for a caller whose own checks name lines (nil for an empty document).
func DecodeStrictTree(doc []byte, v any, what string) (*yaml.Node, error) {
	root, err := parseYAML(doc)
	if err != nil {
		return nil, err
	}
	j, err := nodeJSON(root)
	if err != nil {
		return nil, err
	}
	if root != nil && len(root.Content) > 0 {
		c := checker{what: what}
		if err := c.check(root.Content[0], reflect.TypeOf(v), ""); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, &DecodeError{Msg: plain(err)}
	}
	return root, nil
}

// checker walks a YAML tree along the Go type it decodes into, to report
// what encoding/json would refuse at the line it is on.
type checker struct{ what string }

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func (c checker) check(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) {
		return c.leaf(n, t, path)
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			return c.want(n, t, path)
		}
		return c.mapping(n, t, path)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return c.leaf(n, t, path)
		}
		if n.Kind != yaml.SequenceNode {
			return c.want(n, t, path)
		}
		for i, e := range n.Content {
			if err := c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	return c.leaf(n, t, path)
}

// mapping checks the keys and values of a struct or a map.
func (c checker) mapping(n *yaml.Node, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	if t.Kind() == reflect.Struct {
		fields = structFields(t)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			continue // encoding/json checks what a "<<" brings
		}
		elem := t
		if fields == nil {
			elem = t.Elem()
		} else if elem = fields[k.Value]; elem == nil {
			return c.unknown(k, fields, path)
		}
		if err := c.check(v, elem, joinPath(path, k.Value)); err != nil {
			return err
		}
	}
	return nil
}

func (c checker) unknown(k *yaml.Node, fields map[string]reflect.Type, path string) error {
	msg := fmt.Sprintf("unknown field %q", k.Value)
	if where := c.name(path); where != "" {
		msg += " in " + where
	}
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	if near := Nearest(k.Value, names); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return &DecodeError{Line: k.Line, Column: k.Column, Msg: msg}
}

// leaf decodes n alone into a t, as encoding/json will.
func (c checker) leaf(n *yaml.Node, t reflect.Type, path string) error {
	j, err := nodeJSON(n)
	if err != nil {
		return err
	}
	err = json.Unmarshal(j, reflect.New(t).Interface())
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te) && te.Field == "":
		return c.want(n, t, path)
	}
	msg := plain(err)
	if last := path[strings.LastIndex(path, ".")+1:]; last != "" && strings.HasPrefix(msg, last+" ") {
		// The type's own message names the field already ("start x: …").
		return &DecodeError{Line: n.Line, Column: n.Column, Msg: msg}
	}
	return c.at(n, path, msg)
}

func (c checker) want(n *yaml.Node, t reflect.Type, path string) error {
	msg := fmt.Sprintf("want %s, got %s", typeWord(t), nodeWord(n))
	if t.Kind() == reflect.String && n.Kind == yaml.ScalarNode {
		msg += fmt.Sprintf(" (quote it: %q)", n.Value)
	}
	return c.at(n, path, msg)
}

func (c checker) at(n *yaml.Node, path, msg string) error {
	if where := c.name(path); where != "" {
		msg = where + ": " + msg
	}
	return &DecodeError{Line: n.Line, Column: n.Column, Msg: msg}
}

// name is path, or the document's name at the top.
func (c checker) name(path string) string {
	if path == "" {
		return c.what
	}
	return path
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields are the JSON names of t's fields and their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			for k, v := range structFields(f.Type) {
				fields[k] = v
			}
			continue
		case name == "":
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

func typeWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer >= 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return t.String()
}

func nodeWord(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return strconv.Quote(n.Value)
}

// plain drops encoding/json's "json: " from err's message: the document
// was YAML, and the position says more.
func plain(err error) string {
	return strings.ReplaceAll(err.Error(), "json: ", "")
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError is a *DecodeError for an error of yaml.v3, which puts the line
// in its message.
func yamlError(err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = strings.TrimSpace(te.Errors[0])
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &DecodeError{Line: line, Msg: m[2]}
	}
	return &DecodeError{Msg: strings.TrimPrefix(msg, "yaml: ")}
}
