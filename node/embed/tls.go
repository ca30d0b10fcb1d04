package embed

import (
	"net/url"

	"github.com/nats-io/nats-server/v2/server"
)

// tlsOptions sets the client and leaf ports' TLS from cfg.
// TODO(tls): the TLS work fills this in.
func tlsOptions(cfg Config, opts *server.Options) error { return nil }

// remoteTLS sets the TLS of this node's leafnode to a peer at u.
// TODO(tls): the TLS work fills this in.
func remoteTLS(cfg Config, u *url.URL, r *server.RemoteLeafOpts) error { return nil }
