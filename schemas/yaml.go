package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// DecodeStrict decodes one YAML (1.2) or JSON document into v through its
// JSON tags, refusing unknown fields. YAML 1.2 matters for schemas: under
// YAML 1.1 rules a property named y or n would become a boolean key.
//
// It lives here because contracts were its first user; node and projection
// decode their resources and configuration with it too.
func DecodeStrict(doc []byte, v any) error {
	j, err := YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// YAMLToJSON converts one YAML document to JSON; an empty document is
// "null". A stream of several documents is refused rather than cut to its
// first. Timestamps stay the text they were written as: YAML would turn
// "2024-01-01" into a time, and a schema's const or enum would change.
func YAMLToJSON(doc []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return []byte("null"), nil
		}
		return nil, err
	}
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !emptyDocument(&more) {
			return nil, errors.New("more than one YAML document: give one resource at a time")
		}
	}
	timestampsAsText(&root)
	var v any
	if err := root.Decode(&v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, fmt.Errorf("yaml to json: %w", err)
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
