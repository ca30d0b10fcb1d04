package embed

// Service is one service's identity and what it may do. Each becomes a
// nats-server user (or nkey user) with allow lists only (grants.go).
type Service struct {
	// Name identifies the service; its inbox prefix is _INBOX_<name>.
	Name string `json:"name"`
	// Password is bcrypt ("$2a$…") or plain (accepted with a warning).
	Password string `json:"password,omitempty"`
	// Nkey is the service's public user nkey (U…); it signs in with its
	// seed, and may also use _INBOX_<nkey> as its inbox prefix.
	Nkey string `json:"nkey,omitempty"`
	// Certificate is the client certificate subject that maps to this
	// service when tls.map is on (an RFC 2253 DN such as
	// "CN=orders-svc,O=Acme", or a SAN e-mail or DNS name); the name when
	// empty.
	Certificate string `json:"certificate,omitempty"`
	// Append, Read and Consume name aggregates the service may append to,
	// read (dm.read) and consume (JetStream consumers filtered to them);
	// Query names projections (dm.query, every version, and dm.changes).
	// "*" is all.
	Append  []string `json:"append,omitempty"`
	Read    []string `json:"read,omitempty"`
	Query   []string `json:"query,omitempty"`
	Consume []string `json:"consume,omitempty"`
	// Consumers are the JetStream consumer names the service may create,
	// fetch from and delete: its own. [<name>] when empty.
	Consumers []string `json:"consumers,omitempty"`
	// Admin grants everything DataMesh serves: dm.admin.* (apply,
	// promote, retire, delete, replay, backup), status, and every other
	// grant on every aggregate and projection. Not the raw stream API.
	Admin bool `json:"admin,omitempty"`
}

// TLS is the TLS material of one port.
type TLS struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
	// CA verifies the other side's certificate: clients' on the client
	// port, peers' on the leaf port and, for this node's links, the peer
	// servers'.
	CA string `json:"ca,omitempty"`
	// Verify requires a client certificate signed by CA.
	Verify bool `json:"verify,omitempty"`
	// Map signs clients in by their certificate (nats-server's
	// verify_and_map; implies Verify): the certificate's subject names
	// the service (Service.Certificate, or its name).
	Map bool `json:"map,omitempty"`
}

// Enabled reports whether the port has TLS.
func (t *TLS) Enabled() bool { return t != nil && (t.Cert != "" || t.Key != "") }
