package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
)

// splitDocuments splits a YAML stream on "---" lines, as kubectl does, and
// drops documents that hold only blanks and comments.
func splitDocuments(body []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), len(body)+1)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimLeft(line, "-")) == "" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// apply decodes every resource in body and applies them. Resources are
// checked before anything is stored; a rejected request stores nothing.
func (n *Node) apply(ctx context.Context, body []byte, force bool) ([]ApplyResult, *Error) {
	docs := splitDocuments(body)
	if len(docs) == 0 {
		return nil, errBadRequest("no resource in the request body")
	}
	var contracts []*schemas.Contract
	var specs []*projection.Spec
	var exports []*meshlink.Export
	var links []*meshlink.Link
	for i, doc := range docs {
		var head struct {
			Kind string `json:"kind"`
		}
		j, err := schemas.YAMLToJSON(doc)
		if err == nil {
			err = json.Unmarshal(j, &head)
		}
		if err != nil {
			return nil, errBadRequest("resource %d: %v", i+1, err)
		}
		switch head.Kind {
		case schemas.KindEventType:
			c, err := schemas.DecodeContract(doc)
			if err != nil {
				return nil, errBadRequest("resource %d: %v", i+1, err)
			}
			contracts = append(contracts, c)
		case projection.KindProjection:
			s, err := projection.Decode(doc)
			if err != nil {
				return nil, errBadRequest("resource %d: %v", i+1, err)
			}
			specs = append(specs, s)
		case meshlink.KindExport:
			x, err := meshlink.DecodeExport(doc)
			if err != nil {
				return nil, errBadRequest("resource %d: %v", i+1, err)
			}
			exports = append(exports, x)
		case meshlink.KindLink:
			l, err := meshlink.DecodeLink(doc)
			if err != nil {
				return nil, errBadRequest("resource %d: %v", i+1, err)
			}
			links = append(links, l)
		case "":
			return nil, errBadRequest("resource %d: kind is missing", i+1)
		default:
			return nil, errBadRequest("resource %d: unknown kind %q (this node knows %s, %s, %s and %s)", i+1, head.Kind,
				schemas.KindEventType, projection.KindProjection, meshlink.KindExport, meshlink.KindLink)
		}
	}
	pres, start, e := n.projections.check(specs)
	if e != nil {
		return nil, e
	}
	mres, e := n.mesh.check(exports, links)
	if e != nil {
		return nil, e
	}
	var results []ApplyResult
	if len(contracts) > 0 {
		if results, e = n.registry.applyContracts(ctx, contracts, force); e != nil {
			return nil, e
		}
	}
	if e := n.projections.commit(ctx, start); e != nil {
		return nil, e
	}
	if e := n.mesh.commit(ctx, exports, links); e != nil {
		return nil, e
	}
	return append(append(results, pres...), mres...), nil
}

// Apply applies YAML or JSON resources, as dm.admin.apply does. It is the Go
// API for programs that embed a node.
func (n *Node) Apply(ctx context.Context, body []byte, force bool) ([]ApplyResult, error) {
	res, e := n.apply(ctx, body, force)
	if e != nil {
		return nil, e
	}
	return res, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}
