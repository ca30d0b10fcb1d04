package embed

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// APISubjects are the subjects services' grants open.
type APISubjects struct {
	Append string // dm.append: <Append>.<aggregate>.<id>
	// AppendOn is dm.append-on: <AppendOn>.<server>.<aggregate>.<id>, an
	// append handled by one server of a cluster.
	AppendOn  string
	Read      string // dm.read: <Read>.<aggregate>[.<id>]
	Query     string // dm.query: <Query>.<projection>[.v<version>]
	Changes   string // dm.changes: <Changes>.<projection>.<key> (the node publishes)
	Admin     string // dm.admin: <Admin>.>
	Discovery string // dm.discovery
	Rejected  string // dm.rejected: <Rejected>.<aggregate> (the node publishes)
	// Stream is the event log's stream; EventPrefix the first token of its
	// subjects (<prefix>.<aggregate>.<id>.<type>).
	Stream      string
	EventPrefix string
}

// serviceUsers adds one nats-server user (password, or certificate when
// the client port maps certificates) or nkey user per service.
func serviceUsers(cfg Config, opts *server.Options) {
	mapped := cfg.TLS != nil && cfg.TLS.Map
	// In-process too: the node's console signs in as the user it serves.
	types := connectionTypes(connStandard, connWebsocket, connInProcess)
	for _, svc := range cfg.Services {
		perms := grantPermissions(svc, cfg.API)
		if svc.Nkey != "" {
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: svc.Nkey, Permissions: perms, AllowedConnectionTypes: types})
			continue
		}
		name := svc.Name
		if mapped && svc.Certificate != "" {
			name = svc.Certificate
		}
		opts.Users = append(opts.Users, &server.User{Username: name, Password: svc.Password, Permissions: perms, AllowedConnectionTypes: types})
	}
}

// responseTTL bounds how long a service may answer a request it received
// (NATS response permissions); services get requests only in their inbox.
const responseTTL = time.Minute

// grantPermissions is a service's allow lists: what its grants name, its
// own inbox, discovery and $SRV; nothing else, the JetStream API included,
// except what consuming its aggregates through its own consumers needs.
// Nothing is denied by a deny list: what is not allowed is denied.
func grantPermissions(svc Service, api APISubjects) *server.Permissions {
	g := svc
	if svc.Admin {
		all := []string{"*"}
		g.Append, g.Read, g.Query, g.Consume, g.Consumers = all, all, all, all, all
	}
	pub := []string{api.Discovery, "$SRV.>"}
	sub := []string{"_INBOX_" + svc.Name + ".>"}
	if svc.Nkey != "" {
		sub = append(sub, "_INBOX_"+svc.Nkey+".>")
	}
	if svc.Admin {
		pub = append(pub, api.Admin+".>")
		sub = append(sub, api.Rejected+".>")
	}
	for _, a := range g.Append {
		pub = append(pub, api.Append+"."+a+".>")
		if api.AppendOn != "" {
			pub = append(pub, api.AppendOn+".*."+a+".>")
		}
		// Its refused publishes, announced as they are recorded.
		if a != "*" {
			sub = append(sub, api.Rejected+"."+a)
		}
	}
	for _, a := range g.Read {
		pub = append(pub, api.Read+"."+a, api.Read+"."+a+".>")
	}
	for _, p := range g.Query {
		pub = append(pub, api.Query+"."+p, api.Query+"."+p+".>")
		sub = append(sub, api.Changes+"."+p+".>")
	}
	pub = append(pub, consumePermissions(g, api)...)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: responseTTL},
	}
}

// consumePermissions let a service create consumers on the log through the
// filtered create subject ($JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>:
// JetStream refuses a request whose filter differs from the subject's),
// under its own consumer names only, and fetch from, ack, read the info of
// and delete those. A filter outside the granted aggregates, an unfiltered
// consumer (unless every aggregate is granted), the legacy durable create
// subject and every stream operation stay denied.
func consumePermissions(g Service, api APISubjects) []string {
	if len(g.Consume) == 0 {
		return nil
	}
	names := g.Consumers
	if len(names) == 0 {
		names = []string{g.Name}
	}
	const js = "$JS.API."
	st := api.Stream
	pub := []string{js + "STREAM.INFO." + st}
	for _, c := range names {
		for _, a := range g.Consume {
			if a == "*" {
				// Every aggregate: any filter, or none.
				pub = append(pub, js+"CONSUMER.CREATE."+st+"."+c, js+"CONSUMER.CREATE."+st+"."+c+".>")
				continue
			}
			pub = append(pub, js+"CONSUMER.CREATE."+st+"."+c+"."+api.EventPrefix+"."+a+".>")
		}
		pub = append(pub,
			js+"CONSUMER.INFO."+st+"."+c,
			js+"CONSUMER.MSG.NEXT."+st+"."+c,
			js+"CONSUMER.DELETE."+st+"."+c,
			"$JS.ACK."+st+"."+c+".>",
			"$JS.FC."+st+"."+c+".>")
	}
	return pub
}
