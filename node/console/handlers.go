package console

import (
	"net/http"
	"strconv"

	"github.com/datamesh/datamesh/node/client"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// The handlers below each make the API requests of one page with the
// session's identity (s.call), and answer what the API answered.

func (c *Console) handleCatalog(w http.ResponseWriter, r *http.Request, s *session) {
	cat, err := s.catalog(r.URL.Query().Get("mesh") != "")
	writeResult(w, cat, err)
}

// projectionsPage is the Projections page: every version's status when the
// identity may read it, and the versions discovery lists in any case.
type projectionsPage struct {
	Status  section `json:"status"`
	Catalog section `json:"catalog"`
}

func (c *Console) handleProjections(w http.ResponseWriter, _ *http.Request, s *session) {
	var p projectionsPage
	st, err := s.projections()
	p.Status = sectionOf(st, err)
	cat, err := s.catalog(false)
	if cat != nil {
		p.Catalog = sectionOf(cat.Projections, nil)
	} else {
		p.Catalog = sectionOf(nil, err)
	}
	writeJSON(w, http.StatusOK, p)
}

// handleProjectionAction promotes, rolls back, retires or retries a
// projection version: admin requests, refused by the server otherwise.
func (c *Console) handleProjectionAction(w http.ResponseWriter, r *http.Request, s *session) {
	var req protocol.VersionRequest
	if e := decodeBody(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Name == "" {
		writeError(w, badRequest("name the projection"))
		return
	}
	var (
		out     any
		subject string
		fn      func(api *client.Client) error
	)
	switch r.PathValue("action") {
	case "promote":
		subject, fn = protocol.SubjectPromote, func(api *client.Client) (err error) { out, err = api.Promote(req.Name, req.Version); return }
	case "rollback":
		subject, fn = protocol.SubjectRollback, func(api *client.Client) (err error) { out, err = api.Rollback(req.Name); return }
	case "retire":
		subject, fn = protocol.SubjectRetire, func(api *client.Client) (err error) { out, err = api.Retire(req.Name, req.Version); return }
	case "retry":
		subject, fn = protocol.SubjectRetry, func(api *client.Client) (err error) { out, err = api.Retry(req.Name, req.Version); return }
	default:
		writeError(w, &apiError{Code: "not_found", Message: "no projection action " + r.PathValue("action"), Status: http.StatusNotFound})
		return
	}
	err := s.call(subject, fn)
	if err == nil {
		c.log.Info("console projection "+r.PathValue("action"), "user", displayUser(s.user), "projection", req.Name, "version", req.Version)
	}
	writeResult(w, out, err)
}

// meshPage is the Links and Mesh map pages: the links' and exports' status
// and the discovery document with what each linked peer shows this node.
type meshPage struct {
	Node    string  `json:"node"`
	Status  section `json:"status"`
	Catalog section `json:"catalog"`
}

func (c *Console) handleMesh(w http.ResponseWriter, r *http.Request, s *session) {
	p := meshPage{Node: c.cfg.Node}
	var st *protocol.MeshStatus
	err := s.call(protocol.SubjectMesh, func(api *client.Client) (err error) { st, err = api.Mesh(); return })
	p.Status = sectionOf(st, err)
	cat, err := s.catalog(r.URL.Query().Get("peers") != "")
	p.Catalog = sectionOf(cat, err)
	if cat != nil {
		p.Node = cat.Node
	}
	writeJSON(w, http.StatusOK, p)
}

func (c *Console) handleDeadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	link := r.URL.Query().Get("link")
	if link == "" {
		writeError(w, badRequest("name the link: ?link=NAME"))
		return
	}
	var dls []protocol.DeadLetter
	err := s.call(protocol.SubjectDeadLetters, func(api *client.Client) (err error) { dls, err = api.DeadLetters(link); return })
	writeResult(w, map[string]any{"link": link, "dead_letters": dls}, err)
}

func (c *Console) handleReplay(w http.ResponseWriter, r *http.Request, s *session) {
	var req protocol.ReplayRequest
	if e := decodeBody(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Name == "" {
		writeError(w, badRequest("name the link"))
		return
	}
	var res *protocol.ReplayReply
	err := s.call(protocol.SubjectReplay, func(api *client.Client) (err error) {
		res, err = api.Replay(req.Name, req.ExportSeqs...)
		return
	})
	if err == nil {
		c.log.Info("console link replay", "user", displayUser(s.user), "link", req.Name)
	}
	writeResult(w, res, err)
}

// handleEvents reads one page of an aggregate (?aggregate=A&id=I) or a
// whole category (no id) from ?from=SEQ, at most ?limit=N events.
func (c *Console) handleEvents(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	agg, id := q.Get("aggregate"), q.Get("id")
	if agg == "" {
		writeError(w, badRequest("name the aggregate: ?aggregate=A[&id=I]"))
		return
	}
	var req protocol.ReadRequest
	var err error
	if v := q.Get("from"); v != "" {
		if req.FromSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, badRequest("from: want a seq"))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if req.Limit, err = strconv.Atoi(v); err != nil {
			writeError(w, badRequest("limit: want a number"))
			return
		}
	}
	subject := protocol.SubjectRead + "." + agg
	if id != "" {
		subject += "." + id
	}
	var rr *protocol.ReadReply
	err = s.call(subject, func(api *client.Client) (err error) { rr, err = api.Read(agg, id, req); return })
	writeResult(w, rr, err)
}

type queryRequest struct {
	Name  string           `json:"name"`
	Query projection.Query `json:"query"`
}

func (c *Console) handleQuery(w http.ResponseWriter, r *http.Request, s *session) {
	var req queryRequest
	if e := decodeBody(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Name == "" {
		writeError(w, badRequest("name the projection"))
		return
	}
	var res *projection.Result
	err := s.call(protocol.SubjectQuery+"."+req.Name, func(api *client.Client) (err error) {
		res, err = api.Query(req.Name, req.Query)
		return
	})
	writeResult(w, res, err)
}

// projections is dm.admin.projections with the session's identity.
func (s *session) projections() ([]projection.Status, error) {
	var r *protocol.ProjectionsReply
	if err := s.call(protocol.SubjectProjections, func(api *client.Client) (err error) { r, err = api.Projections(); return }); err != nil {
		return nil, err
	}
	return r.Projections, nil
}

// catalog is dm.discovery with the session's identity (with the peers'
// catalogs when mesh is true).
func (s *session) catalog(mesh bool) (*protocol.Catalog, error) {
	var cat *protocol.Catalog
	err := s.call(protocol.SubjectDiscovery, func(api *client.Client) (err error) {
		if mesh {
			cat, err = api.CatalogMesh()
		} else {
			cat, err = api.Catalog()
		}
		return err
	})
	return cat, err
}
