package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// YAMLToJSON converts one YAML document to JSON; an empty document is
// "null". A stream of several documents is refused rather than cut to its
// first. Timestamps stay the text they were written as: YAML would turn
// "2024-01-01" into a time, and a schema's const or enum would change.
// Errors are *DecodeError, with the line where YAML gives one.
func YAMLToJSON(doc []byte) ([]byte, error) {
	root, err := parseYAML(doc)
	if err != nil {
		return nil, err
	}
	return nodeJSON(root)
}

// parseYAML reads the one document of doc; nil if it is empty.
func parseYAML(doc []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(err)
	}
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(err)
		}
		if !emptyDocument(&more) {
			return nil, &DecodeError{Line: more.Line, Msg: "more than one YAML document: give one resource at a time"}
		}
	}
	timestampsAsText(&root)
	return &root, nil
}

// nodeJSON is the JSON of n; "null" for nil.
func nodeJSON(n *yaml.Node) ([]byte, error) {
	if n == nil {
		return []byte("null"), nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, yamlError(err)
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, &DecodeError{Line: n.Line, Column: n.Column, Msg: "yaml to json: " + plain(err)}
	}
	return j, nil
}

// emptyDocument reports whether n holds nothing, as after a trailing "---".
func emptyDocument(n *yaml.Node) bool {
	if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
		return true
	}
	c := n.Content[0]
	return len(n.Content) == 1 && c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" && c.Value == ""
}

func timestampsAsText(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		timestampsAsText(c)
	}
}

// jsonable turns YAML's decoded values into ones encoding/json accepts:
// mapping keys that are not strings become their text.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			key := "null"
			if k != nil {
				key = fmt.Sprint(k)
			}
			m[key] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
	}
	return v
}
