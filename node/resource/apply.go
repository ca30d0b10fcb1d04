package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/datamesh/datamesh/node/kind"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
)

// ErrInvalid: a document cannot be decoded or has an unknown kind.
var ErrInvalid = errors.New("invalid resource")

func invalid(format string, args ...any) error { return kind.New(ErrInvalid, format, args...) }

// Contracts stores event contracts (the node's registry).
type Contracts interface {
	ApplyContracts(ctx context.Context, cs []*schemas.Contract, force bool) ([]registry.ContractResult, error)
}

// Projections runs projection versions (projection.Manager).
type Projections interface {
	Check(specs []*projection.Spec) ([]projection.Applied, []*projection.Spec, error)
	Commit(ctx context.Context, start []*projection.Spec) error
}

// Mesh runs exports and links (meshlink.Mesh).
type Mesh interface {
	Check(exports []*meshlink.Export, links []*meshlink.Link) ([]meshlink.Applied, error)
	Commit(ctx context.Context, exports []*meshlink.Export, links []*meshlink.Link) error
}

// Parts are what resources are applied to.
type Parts struct {
	Contracts   Contracts
	Projections Projections
	Mesh        Mesh
}

// set is one request's resources, by kind.
type set struct {
	contracts []*schemas.Contract
	specs     []*projection.Spec
	exports   []*meshlink.Export
	links     []*meshlink.Link
}

// Apply decodes every resource in body and applies them. Resources are
// checked before anything is stored; a rejected request stores nothing.
func Apply(ctx context.Context, p Parts, body []byte, force bool) ([]protocol.ApplyResult, error) {
	s, err := decode(body)
	if err != nil {
		return nil, err
	}
	planned, start, err := p.Projections.Check(s.specs)
	if err != nil {
		return nil, err
	}
	meshPlanned, err := p.Mesh.Check(s.exports, s.links)
	if err != nil {
		return nil, err
	}
	var results []protocol.ApplyResult
	if len(s.contracts) > 0 {
		cres, err := p.Contracts.ApplyContracts(ctx, s.contracts, force)
		if err != nil {
			return nil, err
		}
		for _, r := range cres {
			results = append(results, protocol.ApplyResult{Kind: schemas.KindEventType, Name: r.Name,
				Aggregate: r.Aggregate, Version: r.Version, Status: r.Status})
		}
	}
	if err := p.Projections.Commit(ctx, start); err != nil {
		return nil, err
	}
	if err := p.Mesh.Commit(ctx, s.exports, s.links); err != nil {
		return nil, err
	}
	for _, r := range planned {
		results = append(results, protocol.ApplyResult{Kind: projection.KindProjection, Name: r.Name, Version: r.Version, Status: r.Status})
	}
	for _, r := range meshPlanned {
		results = append(results, protocol.ApplyResult{Kind: r.Kind, Name: r.Name, Status: r.Status})
	}
	return results, nil
}

// decode reads every document of body by its kind. Errors name the file
// of the document (see SourceMarker), its index when the file holds more
// than one, and the line, counted from the start of the file.
func decode(body []byte) (*set, error) {
	docs := splitDocuments(body)
	if len(docs) == 0 {
		return nil, invalid("no resource in the request body")
	}
	s := &set{}
	for _, d := range docs {
		if err := s.add(d.body); err != nil {
			return nil, invalid("%v", d.locate(err))
		}
	}
	return s, nil
}

// add decodes one document into s.
func (s *set) add(doc []byte) error {
	var head struct {
		Kind string `json:"kind"`
	}
	j, err := schemas.YAMLToJSON(doc)
	if err == nil {
		err = json.Unmarshal(j, &head)
	}
	if err != nil {
		return err
	}
	switch head.Kind {
	case schemas.KindEventType:
		c, err := schemas.DecodeContract(doc)
		s.contracts = appendIf(s.contracts, c, err)
		return err
	case projection.KindProjection:
		p, err := projection.Decode(doc)
		s.specs = appendIf(s.specs, p, err)
		return err
	case meshlink.KindExport:
		x, err := meshlink.DecodeExport(doc)
		s.exports = appendIf(s.exports, x, err)
		return err
	case meshlink.KindLink:
		l, err := meshlink.DecodeLink(doc)
		s.links = appendIf(s.links, l, err)
		return err
	case "":
		return errors.New("kind is missing")
	default:
		line, col := kindPosition(doc)
		return &schemas.DecodeError{Line: line, Column: col, Msg: fmt.Sprintf("unknown kind %q (this node knows %s, %s, %s and %s)",
			head.Kind, schemas.KindEventType, projection.KindProjection, meshlink.KindExport, meshlink.KindLink)}
	}
}

func appendIf[T any](list []T, v T, err error) []T {
	if err != nil {
		return list
	}
	return append(list, v)
}
