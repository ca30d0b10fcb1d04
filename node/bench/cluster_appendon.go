package bench

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/api"
	"github.com/datamesh/datamesh/node/protocol"
)

// appendPrefix returns the subject prefix the cluster appends go to, and
// says which: the one of the server the client is connected to
// (api.AppendOnPrefix) when the node serves it, else dm.append, which any
// server's node answers (the API is a queue group, and nats-server picks
// a member at random, local or across a route).
func appendPrefix(cl *cluster) (prefix, note string) {
	on := api.AppendOnPrefix(cl.nc.ConnectedServerName())
	// An append without data is refused before anything is stored: any
	// answer says the subject is served.
	m := nats.NewMsg(on + ".order.probe")
	m.Header.Set(protocol.HeaderType, "OrderPlaced")
	if _, err := cl.nc.RequestMsg(m, 5*time.Second); err == nil {
		return on, "appends to " + on + ".<aggregate>.<id>, the client's server"
	}
	return protocol.SubjectAppend, "appends to dm.append.<aggregate>.<id>, any server's node"
}
