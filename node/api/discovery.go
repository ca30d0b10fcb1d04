package api

import (
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
)

// Catalog returns what dm.discovery answers: the node's self-description.
func (a *API) Catalog() protocol.Catalog {
	prefix := a.deps.Log.Prefix()
	c := protocol.Catalog{
		Node:             a.cfg.Node,
		Version:          protocol.Version,
		Domain:           a.cfg.Node,
		Stream:           a.deps.Log.Stream(),
		SubjectPattern:   prefix + ".<aggregate>.<id>.<type>",
		RequireContracts: a.cfg.RequireContracts,
		EventTypes:       a.deps.Registry.EventTypes(),
		Projections:      []protocol.ProjectionEntry{},
		LeafURL:          a.cfg.LeafURL,
	}
	active := a.deps.Projections.Active()
	for _, s := range a.deps.Projections.Specs() {
		e := protocol.ProjectionEntry{
			Name: s.Name, Version: s.Version, Active: active[s.Name] == s.Version, Description: s.Description,
			Subject: protocol.SubjectQuery + "." + s.Name + ".v" + strconv.Itoa(s.Version), Source: s.Source,
			Indexes: s.Indexes, History: s.History.On, Document: s.Document,
		}
		if e.Active {
			e.Subject = protocol.SubjectQuery + "." + s.Name
		}
		if s.Changes {
			e.Changes = protocol.SubjectChanges + "." + s.Name + ".>"
		}
		c.Projections = append(c.Projections, e)
	}
	c.Exports, c.Links = a.deps.Mesh.Specs()
	return c
}

func (a *API) handleDiscovery(req micro.Request) {
	var body struct {
		Mesh bool `json:"mesh"`
	}
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &body); err != nil {
			replyError(req, badRequest(`the body is optional; if given, want {"mesh": true|false}: %v`, err))
			return
		}
	}
	c := a.Catalog()
	if body.Mesh {
		c.Mesh = a.deps.Mesh.PeerCatalogs()
	}
	respondJSON(req, c)
}
