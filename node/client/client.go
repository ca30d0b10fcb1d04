// Package client is a thin Go client for a DataMesh node's NATS API. It adds
// nothing to the protocol: every call is one NATS request that any client
// could make by hand (see docs/protocol.md). The CLI and the tests use it.
package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/projection"
)

// DefaultTimeout bounds each request. It is longer than the node's own
// bound on admin work (10 s), so a slow admin call is answered, not lost.
const DefaultTimeout = 15 * time.Second

// Client calls a node's API over a NATS connection it does not own.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
}

// New returns a client on nc with DefaultTimeout.
func New(nc *nats.Conn) *Client { return &Client{nc: nc, timeout: DefaultTimeout} }

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
func (c *Client) Append(aggregate, id, typ string, data []byte, o AppendOptions) (*node.AppendReply, error) {
	h := nats.Header{}
	for k, v := range o.Headers {
		h[k] = v
	}
	h.Set(node.HeaderType, typ)
	setIf(h, node.HeaderID, o.ID)
	setIf(h, node.HeaderSource, o.Source)
	setIf(h, node.HeaderTime, o.Time)
	if o.ExpectedVersion != nil {
		h.Set(node.HeaderExpectedVersion, strconv.FormatUint(*o.ExpectedVersion, 10))
	}
	var r node.AppendReply
	return &r, c.call(node.SubjectAppend+"."+aggregate+"."+id, h, data, &r)
}

// AppendBatch stores events (structured CloudEvents) atomically on aggregate/id.
func (c *Client) AppendBatch(aggregate, id string, events []map[string]any, expected *uint64) (*node.BatchReply, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return nil, err
	}
	h := nats.Header{}
	h.Set(node.HeaderContentType, node.ContentTypeBatch)
	if expected != nil {
		h.Set(node.HeaderExpectedVersion, strconv.FormatUint(*expected, 10))
	}
	var r node.BatchReply
	return &r, c.call(node.SubjectAppend+"."+aggregate+"."+id, h, body, &r)
}

// Read returns events of aggregate (id "" reads the whole category).
func (c *Client) Read(aggregate, id string, req node.ReadRequest) (*node.ReadReply, error) {
	subj := node.SubjectRead + "." + aggregate
	if id != "" {
		subj += "." + id
	}
	body, _ := json.Marshal(req)
	var r node.ReadReply
	return &r, c.call(subj, nil, body, &r)
}

// ReadAll follows next_seq until the end and returns every event.
func (c *Client) ReadAll(aggregate, id string) ([]node.Event, error) {
	var all []node.Event
	req := node.ReadRequest{}
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
func (c *Client) Apply(resources []byte, force bool) (*node.ApplyReply, error) {
	h := nats.Header{}
	if force {
		h.Set(node.HeaderForce, "true")
	}
	var r node.ApplyReply
	return &r, c.call(node.SubjectApply, h, resources, &r)
}

// Catalog returns the node's discovery document.
func (c *Client) Catalog() (*node.Catalog, error) {
	var r node.Catalog
	return &r, c.call(node.SubjectDiscovery, nil, nil, &r)
}

// CatalogMesh returns the node's discovery document with the catalogs its
// linked peers show it.
func (c *Client) CatalogMesh() (*node.Catalog, error) {
	var r node.Catalog
	return &r, c.call(node.SubjectDiscovery, nil, []byte(`{"mesh":true}`), &r)
}

// Mesh returns the status of the node's links and exports.
func (c *Client) Mesh() (*node.MeshStatus, error) {
	var r node.MeshStatus
	return &r, c.call(node.SubjectMesh, nil, nil, &r)
}

// RetryLink restarts a failed link from its checkpoint.
func (c *Client) RetryLink(name string) error {
	b, _ := json.Marshal(map[string]string{"name": name})
	var r map[string]string
	return c.call(node.SubjectLinkRetry, nil, b, &r)
}

// Delete deletes an export or a link (kind "Export" or "Link", any case).
func (c *Client) Delete(kind, name string) (*node.DeleteReply, error) {
	b, _ := json.Marshal(node.DeleteRequest{Kind: kind, Name: name})
	var r node.DeleteReply
	if err := c.call(node.SubjectDelete, nil, b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeadLetters lists the events a link could not import, in export order,
// reading every page.
func (c *Client) DeadLetters(link string) ([]node.DeadLetter, error) {
	all := []node.DeadLetter{}
	req := node.DeadLettersRequest{Name: link, Limit: 1000}
	for {
		b, _ := json.Marshal(req)
		var r node.DeadLettersReply
		if err := c.call(node.SubjectDeadLetters, nil, b, &r); err != nil {
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
func (c *Client) Replay(link string, exportSeqs ...uint64) (*node.ReplayReply, error) {
	b, _ := json.Marshal(node.ReplayRequest{Name: link, ExportSeqs: exportSeqs})
	var r node.ReplayReply
	if err := c.call(node.SubjectReplay, nil, b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// call makes one request and decodes the reply into out, or the error reply
// into a *node.Error.
func (c *Client) call(subject string, h nats.Header, body []byte, out any) error {
	m := nats.NewMsg(subject)
	if h != nil {
		m.Header = h
	}
	m.Data = body
	resp, err := c.nc.RequestMsg(m, c.timeout)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no DataMesh node answers on %s at %s (is `datamesh node` running?)", subject, c.nc.ConnectedUrlRedacted())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if resp.Header.Get(micro.ErrorCodeHeader) != "" {
		var er node.ErrorReply
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
	return &r, cc.call(node.SubjectQuery+"."+name, nil, body, &r)
}

// Get returns one document of a projection, waiting for minSeq if not 0.
func (c *Client) Get(name, key string, minSeq uint64) (*projection.Result, error) {
	return c.Query(name, projection.Query{Get: &key, MinSeq: minSeq})
}

// Projections returns the status of every projection version.
func (c *Client) Projections() (*node.ProjectionsReply, error) {
	var r node.ProjectionsReply
	return &r, c.call(node.SubjectProjections, nil, nil, &r)
}

// Retry restarts a failed projection version (0: the active one).
func (c *Client) Retry(name string, version int) (*projection.Status, error) {
	body, _ := json.Marshal(node.VersionRequest{Name: name, Version: version})
	var r projection.Status
	return &r, c.call(node.SubjectRetry, nil, body, &r)
}

// Promote makes a live projection version the active one.
func (c *Client) Promote(name string, version int) (*node.AliasReply, error) {
	body, _ := json.Marshal(node.VersionRequest{Name: name, Version: version})
	var r node.AliasReply
	return &r, c.call(node.SubjectPromote, nil, body, &r)
}

// Rollback makes the previously active version active again.
func (c *Client) Rollback(name string) (*node.AliasReply, error) {
	body, _ := json.Marshal(node.VersionRequest{Name: name})
	var r node.AliasReply
	return &r, c.call(node.SubjectRollback, nil, body, &r)
}

// Retire stops a version that is not active and deletes its file.
func (c *Client) Retire(name string, version int) (*node.RetireReply, error) {
	body, _ := json.Marshal(node.VersionRequest{Name: name, Version: version})
	var r node.RetireReply
	return &r, c.call(node.SubjectRetire, nil, body, &r)
}
