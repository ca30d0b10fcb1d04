package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/projection"
)

// DefaultTimeout bounds each request. It is longer than the node's own
// bound on admin work (10 s), so a slow admin call is answered, not lost.
const DefaultTimeout = 15 * time.Second

// Client calls a node's API over a NATS connection it does not own.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
	on      *appendOn // shared by the copies WithTimeout makes
}

// New returns a client on nc with DefaultTimeout.
func New(nc *nats.Conn) *Client {
	return &Client{nc: nc, timeout: DefaultTimeout, on: &appendOn{served: map[string]bool{}}}
}

// WithTimeout returns a copy of c whose requests wait at most d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	cp.timeout = d
	return &cp
}

// AppendOptions are the optional attributes of an append.
type AppendOptions struct {
	// ID is the ce-id; appending an ID twice stores the event once.
	ID string
	// ExpectedVersion, when set, is the seq of the aggregate's last event (0: new aggregate).
	ExpectedVersion *uint64
	Source          string
	Time            string
	// Headers are sent as they are (for example ce-* extension attributes).
	Headers nats.Header
}

// Expect returns a pointer to v, for AppendOptions.ExpectedVersion.
func Expect(v uint64) *uint64 { return &v }

// Append stores one event of type typ with data (JSON) on aggregate/id.
func (c *Client) Append(aggregate, id, typ string, data []byte, o AppendOptions) (*protocol.AppendReply, error) {
	h := nats.Header{}
	for k, v := range o.Headers {
		h[k] = v
	}
	h.Set(protocol.HeaderType, typ)
	setIf(h, protocol.HeaderID, o.ID)
	setIf(h, protocol.HeaderSource, o.Source)
	setIf(h, protocol.HeaderTime, o.Time)
	if o.ExpectedVersion != nil {
		h.Set(protocol.HeaderExpectedVersion, strconv.FormatUint(*o.ExpectedVersion, 10))
	}
	var r protocol.AppendReply
	return &r, c.callAppend(aggregate, id, h, data, &r)
}

// AppendBatch stores events (structured CloudEvents) atomically on aggregate/id.
func (c *Client) AppendBatch(aggregate, id string, events []map[string]any, expected *uint64) (*protocol.BatchReply, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return nil, err
	}
	h := nats.Header{}
	h.Set(protocol.HeaderContentType, protocol.ContentTypeBatch)
	if expected != nil {
		h.Set(protocol.HeaderExpectedVersion, strconv.FormatUint(*expected, 10))
	}
	var r protocol.BatchReply
	return &r, c.callAppend(aggregate, id, h, body, &r)
}

// Read returns events of aggregate (id "" reads the whole category).
func (c *Client) Read(aggregate, id string, req protocol.ReadRequest) (*protocol.ReadReply, error) {
	subj := protocol.SubjectRead + "." + aggregate
	if id != "" {
		subj += "." + id
	}
	body, _ := json.Marshal(req)
	var r protocol.ReadReply
	return &r, c.call(subj, nil, body, &r)
}

// ReadAll follows next_seq until the end and returns every event.
func (c *Client) ReadAll(aggregate, id string) ([]protocol.Event, error) {
	var all []protocol.Event
	req := protocol.ReadRequest{}
	for {
		r, err := c.Read(aggregate, id, req)
		if err != nil {
			return nil, err
		}
		all = append(all, r.Events...)
		if r.NextSeq == 0 {
			return all, nil
		}
		req.FromSeq = r.NextSeq
	}
}

// Apply sends YAML or JSON resources to dm.admin.apply.
func (c *Client) Apply(resources []byte, force bool) (*protocol.ApplyReply, error) {
	h := nats.Header{}
	if force {
		h.Set(protocol.HeaderForce, "true")
	}
	var r protocol.ApplyReply
	return &r, c.call(protocol.SubjectApply, h, resources, &r)
}

// Catalog returns the node's discovery document.
func (c *Client) Catalog() (*protocol.Catalog, error) {
	var r protocol.Catalog
	return &r, c.call(protocol.SubjectDiscovery, nil, nil, &r)
}

// CatalogMesh returns the node's discovery document with the catalogs its
// linked peers show it.
func (c *Client) CatalogMesh() (*protocol.Catalog, error) {
	var r protocol.Catalog
	return &r, c.call(protocol.SubjectDiscovery, nil, []byte(`{"mesh":true}`), &r)
}

// Mesh returns the status of the node's links and exports.
func (c *Client) Mesh() (*protocol.MeshStatus, error) {
	var r protocol.MeshStatus
	return &r, c.call(protocol.SubjectMesh, nil, nil, &r)
}

// RetryLink restarts a failed link from its checkpoint.
func (c *Client) RetryLink(name string) error {
	b, _ := json.Marshal(map[string]string{"name": name})
	var r map[string]string
	return c.call(protocol.SubjectLinkRetry, nil, b, &r)
}

// Delete deletes an export or a link (kind "Export" or "Link", any case).
func (c *Client) Delete(kind, name string) (*protocol.DeleteReply, error) {
	b, _ := json.Marshal(protocol.DeleteRequest{Kind: kind, Name: name})
	var r protocol.DeleteReply
	if err := c.call(protocol.SubjectDelete, nil, b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeadLetters lists the events a link could not import, in export order,
// reading every page.
func (c *Client) DeadLetters(link string) ([]protocol.DeadLetter, error) {
	all := []protocol.DeadLetter{}
	req := protocol.DeadLettersRequest{Name: link, Limit: 1000}
	for {
		b, _ := json.Marshal(req)
		var r protocol.DeadLettersReply
		if err := c.call(protocol.SubjectDeadLetters, nil, b, &r); err != nil {
			return nil, err
		}
		all = append(all, r.DeadLetters...)
		if r.Next == 0 {
			return all, nil
		}
		req.After = r.Next
	}
}

// Replay runs a link's dead letters (those at exportSeqs; none: all) through
// its transform and contracts again and appends those that pass.
func (c *Client) Replay(link string, exportSeqs ...uint64) (*protocol.ReplayReply, error) {
	b, _ := json.Marshal(protocol.ReplayRequest{Name: link, ExportSeqs: exportSeqs})
	var r protocol.ReplayReply
	if err := c.call(protocol.SubjectReplay, nil, b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// call makes one request and decodes the reply into out, or the error reply
// into a *protocol.Error.
func (c *Client) call(subject string, h nats.Header, body []byte, out any) error {
	m := nats.NewMsg(subject)
	if h != nil {
		m.Header = h
	}
	m.Data = body
	resp, err := c.nc.RequestMsg(m, c.timeout)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no DataMesh node answers on %s at %s (is `datamesh node` running?): %w", subject, c.nc.ConnectedUrlRedacted(), err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if resp.Header.Get(micro.ErrorCodeHeader) != "" {
		var er protocol.ErrorReply
		if err := json.Unmarshal(resp.Data, &er); err != nil || er.Error == nil {
			return fmt.Errorf("%s: %s %s", subject, resp.Header.Get(micro.ErrorCodeHeader), resp.Header.Get(micro.ErrorHeader))
		}
		return er.Error
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", subject, err)
	}
	return nil
}

func setIf(h nats.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

// Query sends a query to a projection (its active version unless q.Version is set).
func (c *Client) Query(name string, q projection.Query) (*projection.Result, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	var r projection.Result
	// A query waiting for min_seq may take its timeout_ms (5 s by default)
	// and must be answered, even with not_up_to_date.
	cc := c
	if wait := time.Duration(q.TimeoutMS)*time.Millisecond + 2*time.Second; q.MinSeq > 0 && wait > c.timeout {
		cc = c.WithTimeout(wait)
	}
	return &r, cc.call(protocol.SubjectQuery+"."+name, nil, body, &r)
}

// Get returns one document of a projection, waiting for minSeq if not 0.
func (c *Client) Get(name, key string, minSeq uint64) (*projection.Result, error) {
	return c.Query(name, projection.Query{Get: &key, MinSeq: minSeq})
}

// Projections returns the status of every projection version.
func (c *Client) Projections() (*protocol.ProjectionsReply, error) {
	var r protocol.ProjectionsReply
	return &r, c.call(protocol.SubjectProjections, nil, nil, &r)
}

// Retry restarts a failed projection version (0: the active one).
func (c *Client) Retry(name string, version int) (*projection.Status, error) {
	body, _ := json.Marshal(protocol.VersionRequest{Name: name, Version: version})
	var r projection.Status
	return &r, c.call(protocol.SubjectRetry, nil, body, &r)
}

// Promote makes a live projection version the active one.
func (c *Client) Promote(name string, version int) (*protocol.AliasReply, error) {
	body, _ := json.Marshal(protocol.VersionRequest{Name: name, Version: version})
	var r protocol.AliasReply
	return &r, c.call(protocol.SubjectPromote, nil, body, &r)
}

// Rollback makes the previously active version active again.
func (c *Client) Rollback(name string) (*protocol.AliasReply, error) {
	body, _ := json.Marshal(protocol.VersionRequest{Name: name})
	var r protocol.AliasReply
	return &r, c.call(protocol.SubjectRollback, nil, body, &r)
}

// Retire stops a version that is not active and deletes its file.
func (c *Client) Retire(name string, version int) (*protocol.RetireReply, error) {
	body, _ := json.Marshal(protocol.VersionRequest{Name: name, Version: version})
	var r protocol.RetireReply
	return &r, c.call(protocol.SubjectRetire, nil, body, &r)
}

// Reload asks the node to read its config again and apply its services,
// peers and certificates (as SIGHUP does). Needs an admin identity.
func (c *Client) Reload() error {
	var r struct {
		Status string `json:"status"`
	}
	return c.call(protocol.SubjectReload, nil, []byte("{}"), &r)
}

// ServerProjections lists the projection versions of one server of a
// clustered node (the servers are in Projections' reply).
func (c *Client) ServerProjections(server string) (*protocol.ProjectionsReply, error) {
	var r protocol.ProjectionsReply
	if err := c.call(protocol.SubjectServer+"."+server+".projections", nil, []byte("{}"), &r); err != nil {
		return nil, err
	}
	return &r, nil
}
