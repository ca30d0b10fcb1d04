package client

import (
	"errors"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/protocol"
)

// appendOn remembers, for each server the connection has been on, whether
// it serves dm.append-on.<server>: a server of a clustered node does. An
// append sent there is handled by that server, not by a random member of
// the API's queue group, which saves two route crossings and lets the
// stream's leader replicate appends in larger groups (docs/cluster.md).
type appendOn struct {
	mu     sync.Mutex
	served map[string]bool
}

// try reports whether appends should first go to server's own subject:
// yes until it is known not to serve it.
func (o *appendOn) try(server string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	served, known := o.served[server]
	return served || !known
}

func (o *appendOn) set(server string, served bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.served[server] = served
}

// callAppend sends an append to the server the connection is on when it
// serves dm.append-on (a server of a cluster: one that tells the client of
// other servers), else to dm.append, which any server answers. The reply
// means the same either way.
func (c *Client) callAppend(aggregate, id string, h nats.Header, body []byte, out any) error {
	server := c.nc.ConnectedServerName()
	// A standalone server announces no other servers to connect to.
	clustered := len(c.nc.DiscoveredServers()) > 0 || len(c.nc.Servers()) > 1
	if clustered && server != "" && c.on.try(server) {
		err := c.call(protocol.SubjectAppendOn+"."+server+"."+aggregate+"."+id, h, body, out)
		if !errors.Is(err, nats.ErrNoResponders) {
			c.on.set(server, true)
			return err
		}
		c.on.set(server, false)
	}
	return c.call(protocol.SubjectAppend+"."+aggregate+"."+id, h, body, out)
}
